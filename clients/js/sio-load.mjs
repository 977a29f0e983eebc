// Chat load with the real client: N socket.io-client instances (default transports:
// long-polling handshake, then the upgrade to WebSocket, as a browser does) join one room
// of a chat server, a sender posts RATE messages a second into it, and every delivery's
// latency is measured (the send time travels in the text; one machine, one clock).
//   usage: node sio-load.mjs --url http://127.0.0.1:3001 --secret s --clients 5000 \
//            --rate 10 --seconds 10 [--workers 2] [--server-pid PID] [--transports polling,websocket]
//            [--burst 1]
// Prints one JSON line: clients joined, deliveries expected/received, latency p50/p99/max,
// and with a pid the server's RSS per connection (loaded minus before the clients, over
// the clients, sampled at the end of the sending window) and CPU per delivery.
import { fork } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const url = args.url ?? "http://127.0.0.1:3001";
const secret = args.secret ?? "secret";
const room = args.room ?? "load";
const transports = (args.transports ?? "polling,websocket").split(",");

const b64 = (x) => Buffer.from(x).toString("base64url");
function token(sub) {
  const body = `${b64(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64(JSON.stringify({ sub, exp: 4_000_000_000 }))}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connect(name) {
  return new Promise((resolve, reject) => {
    const s = io(url, { auth: { token: token(name) }, transports, reconnection: false, timeout: 20000 });
    s.once("connect", () => resolve(s));
    s.once("connect_error", reject);
  });
}

async function join(s) {
  const ack = await s.timeout(20000).emitWithAck("join", { room });
  if (!ack?.ok) throw new Error(`join: ${JSON.stringify(ack)}`);
}

if (process.env.SIO_LOAD_WORKER) {
  // A worker: its share of the receiving clients.
  const [first, count] = process.env.SIO_LOAD_WORKER.split(":").map(Number);
  const lat = [];
  let received = 0;
  let failed = 0;
  // Every message counts: the sender posts only inside the window. (Waiting for the
  // parent's "count" could miss the first message, whose deliveries may be read before
  // that IPC message when the worker is busy.)
  let counting = true;
  const disconnects = [];
  const sockets = [];
  const opening = [];
  for (let i = first; i < first + count; i++) {
    opening.push(
      connect(`viewer${i}`)
        .then(async (s) => {
          s.on("disconnect", (reason) => {
            if (counting) disconnects.push(reason);
          });
          s.on("message", (m) => {
            if (!counting) return;
            received++;
            lat.push(Date.now() - Number(m.text.split(" ")[0]));
          });
          await join(s);
          sockets.push(s);
        })
        .catch(() => failed++),
    );
    // Paced at 100 per 20 ms per worker unless --burst (every client at once).
    if (!args.burst && opening.length % 100 === 0) await sleep(20);
  }
  await Promise.all(opening);
  process.send({ joined: sockets.length, failed });
  process.on("message", async (m) => {
    if (m?.report !== undefined) {
      // Every socket's copy of the `m.report` messages sent, or 2 s without another.
      const target = m.report * sockets.length;
      let last = -1;
      let still = 0;
      while (received < target && still < 20) {
        still = received === last ? still + 1 : 0;
        last = received;
        await sleep(100);
      }
      counting = false;
      process.send({ received, lat, disconnects });
    }
    if (m === "exit") process.exit(0);
  });
} else {
  const clients = Number(args.clients ?? 1000);
  const rate = Number(args.rate ?? 10);
  const seconds = Number(args.seconds ?? 10);
  const workers = Number(args.workers ?? 2);
  const pid = args["server-pid"] ? Number(args["server-pid"]) : undefined;
  const sample = () => {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)[1]);
    return { cpuMs: (Number(f[11]) + Number(f[12])) * 10, rssKiB: rss, hwmKiB: hwm };
  };
  const before = pid ? sample() : undefined;
  const children = [];
  const per = Math.ceil(clients / workers);
  const ready = [];
  for (let w = 0; w < workers; w++) {
    const first = w * per;
    const count = Math.max(0, Math.min(per, clients - first));
    const child = fork(new URL(import.meta.url).pathname, process.argv.slice(2), {
      env: { ...process.env, SIO_LOAD_WORKER: `${first}:${count}` },
    });
    children.push(child);
    ready.push(new Promise((r) => child.once("message", r)));
  }
  const joined = (await Promise.all(ready)).reduce((a, m) => ({ joined: a.joined + m.joined, failed: a.failed + m.failed }), { joined: 0, failed: 0 });
  const sender = await connect("sender");
  await join(sender);
  await sleep(1000);
  const start = pid ? sample() : undefined;
  const t0 = Date.now();
  let sent = 0;
  while (Date.now() - t0 < seconds * 1000) {
    const due = t0 + (sent * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    sender.emit("message", { room, text: `${Date.now()} ${"x".repeat(48)}` });
    sent++;
  }
  await sleep(1000); // the last messages arrive (the workers wait longer for stragglers)
  const end = pid ? sample() : undefined;
  const reports = await Promise.all(
    children.map((c) => new Promise((r) => { c.once("message", r); c.send({ report: sent }); })),
  );
  const lat = reports.flatMap((r) => r.lat).sort((a, b) => a - b);
  const received = reports.reduce((a, r) => a + r.received, 0);
  const disconnects = reports.flatMap((r) => r.disconnects);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? null;
  const out = {
    clients,
    joined: joined.joined,
    failed: joined.failed,
    transports: transports.join(","),
    sent,
    expected: sent * joined.joined,
    received,
    p50_ms: pct(50),
    p99_ms: pct(99),
    max_ms: lat.at(-1) ?? null,
    disconnected: disconnects.length,
    disconnect_reasons: [...new Set(disconnects)],
  };
  if (pid) {
    out.rss_per_connection_kib = Number(((end.rssKiB - before.rssKiB) / joined.joined).toFixed(1));
    // The high-water mark: what the connections cost at their peak (the connect burst).
    out.peak_rss_per_connection_kib = Number(((end.hwmKiB - before.rssKiB) / joined.joined).toFixed(1));
    out.cpu_us_per_delivery = Number((((end.cpuMs - start.cpuMs) * 1000) / Math.max(1, received)).toFixed(2));
  }
  console.log(JSON.stringify(out));
  for (const c of children) c.send("exit");
  sender.close();
  process.exit(0);
}
