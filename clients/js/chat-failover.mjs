// Two socket.io-clients through Nginx, each on a different chat node, exchange messages
// through Redis; the node of the first is killed and it reconnects (through Nginx) to the
// other, rejoins, and both keep chatting. Used by the deployment's topology test.
// usage: node chat-failover.mjs <siteUrl> <room> '<{"alice":tok,"bob":tok}>' <localAddr...>
// Nginx keeps a client on one node by its address (hash $remote_addr): clients are made
// from the local addresses given until one lands on each node, told by the nodes'
// connection gauges, which only the private network may read: the script prints "GAUGES"
// and the test answers with a line "[node1, node2]" (null for a node that is down).
// It prints "KILL" once the node of alice should die and waits for a line on stdin; it
// prints one JSON object with what it saw at the end.
import { io } from "socket.io-client";
import https from "node:https";
import { createInterface } from "node:readline";

const [site, room, tokensJson, ...addrs] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const out = { received: { alice: [], bob: [] }, probes: [] };
const fail = (e) => { console.log(JSON.stringify({ error: String(e?.stack ?? e), ...out })); process.exit(1); };
setTimeout(() => fail("timeout"), 90000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stdin = createInterface({ input: process.stdin });
const nextLine = () => new Promise((res) => stdin.once("line", res));
const until = async (what, cond, ms = 20000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
};
const gauges = async () => { console.log("GAUGES"); return JSON.parse(await nextLine()); };

// A client from `addr` through Nginx (the self-signed test certificate accepted), with
// socket.io-client's default transports (long-polling, then the WebSocket upgrade) and its
// default reconnection.
const connect = (token, addr) => new Promise((res, rej) => {
  const agent = new https.Agent({ localAddress: addr, rejectUnauthorized: false, keepAlive: true });
  const s = io(site, { auth: { token }, agent, rejectUnauthorized: false, timeout: 5000,
    reconnectionDelay: 200, reconnectionDelayMax: 1000 });
  s.once("connect", () => res(s));
  s.once("connect_error", (e) => { s.close(); rej(e); });
});
const ack = (s, event, arg) => s.timeout(8000).emitWithAck(event, arg);

try {
  // Find an address Nginx sends to node 1 (alice) and one it sends to node 2 (bob).
  const clients = {};
  for (const addr of addrs) {
    if (clients.alice && clients.bob) break;
    const before = await gauges();
    const s = await connect(tokens.alice, addr);
    let after = before;
    await until("the gauge to count the new client", async () => {
      after = await gauges();
      return after[0] + after[1] > before[0] + before[1];
    });
    const node = after[0] > before[0] ? 1 : 2;
    out.probes.push({ addr, node });
    if (node === 1 && !clients.alice) { clients.alice = s; continue; }
    s.close();
    if (node === 2 && !clients.bob) {
      await until("the probe to go", async () => { const g = await gauges(); return g[1] === before[1]; });
      clients.bob = await connect(tokens.bob, addr);
    }
  }
  if (!clients.alice || !clients.bob) throw new Error(`no address on each node: ${JSON.stringify(out.probes)}`);
  await until("alice on node 1 and bob on node 2", async () => {
    const g = await gauges(); return g[0] === 1 && g[1] === 1;
  });
  for (const [name, s] of Object.entries(clients)) {
    s.on("message", (m) => out.received[name].push(m.text));
  }
  const join = async (s) => { const r = await ack(s, "join", { room }); if (r.error) throw new Error(JSON.stringify(r)); };
  await join(clients.alice);
  await join(clients.bob);
  out.before = [(await ack(clients.alice, "message", { room, text: "from node 1" })).ok,
                (await ack(clients.bob, "message", { room, text: "from node 2" })).ok];
  await until("both messages on both nodes", () =>
    ["alice", "bob"].every((n) => ["from node 1", "from node 2"].every((t) => out.received[n].includes(t))));

  // Node 1 dies; alice reconnects through Nginx to node 2 and rejoins.
  let reconnected = false;
  clients.alice.io.on("reconnect", () => { reconnected = true; });
  console.log("KILL");
  await nextLine();
  await until("alice to reconnect", () => reconnected, 30000);
  await join(clients.alice);
  out.after = await gauges();
  out.afterNode2 = out.after[1];
  out.failover = [(await ack(clients.alice, "message", { room, text: "after failover (alice)" })).ok,
                  (await ack(clients.bob, "message", { room, text: "after failover (bob)" })).ok];
  await until("both messages after the failover", () =>
    ["alice", "bob"].every((n) => ["after failover (alice)", "after failover (bob)"].every((t) => out.received[n].includes(t))));
  await sleep(300);
  for (const s of Object.values(clients)) s.close();
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (e) {
  fail(e);
}
