// N HTTP-FLV viewers read by Node's own HTTP client (llhttp, libuv's 64 KiB reads): an
// independent reader to check that `live-load` is not what shapes a server's cost.
// Counts bytes only, as a player's network stack does before the demuxer runs.
//   usage: node flv-viewers.mjs <url> <viewers> <seconds> [server-pid[,pid...]]
// An https URL is read over TLS (any certificate accepted: a test's self-signed one).
// Prints per second the viewers attached and Mbit/s delivered, and with pids each
// process's CPU per viewer-second over the window after every viewer has attached (the
// first pid's as "summary:", each as "summary[pid]:").
import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";

const [url, viewersArg, secondsArg, pidArg] = process.argv.slice(2);
const viewers = Number(viewersArg ?? 100);
const seconds = Number(secondsArg ?? 10);
const tls = url.startsWith("https:");
const client = tls ? https : http;
const agent = new client.Agent({ keepAlive: false, maxSockets: Infinity, rejectUnauthorized: false });

let attached = 0;
let bytes = 0;
let errors = 0;

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

function open() {
  const req = client.get(url, { agent }, (res) => {
    if (res.statusCode !== 200) {
      errors++;
      res.resume();
      return;
    }
    attached++;
    res.on("data", (chunk) => {
      bytes += chunk.length;
    });
    res.on("end", () => attached--);
    res.on("error", () => {
      attached--;
      errors++;
    });
  });
  req.on("error", () => errors++);
}

for (let i = 0; i < viewers; i++) {
  open();
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 100));
}
while (attached + errors < viewers) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 1000));

const pids = pidArg ? pidArg.split(",").map(Number) : [];
const cpu0 = pids.map(cpuMs);
const t0 = Date.now();
let last = bytes;
let viewerSeconds = 0;
let total = 0;
for (let s = 1; s <= seconds; s++) {
  await new Promise((r) => setTimeout(r, t0 + s * 1000 - Date.now()));
  viewerSeconds += attached;
  total += bytes - last;
  console.log(
    `t=${s}s viewers=${attached}/${viewers} errors=${errors} delivered=${((bytes - last) * 8 / 1e6).toFixed(1)} Mbit/s`,
  );
  last = bytes;
}
pids.forEach((pid, i) => {
  const used = cpuMs(pid) - cpu0[i];
  const line = `${(used / viewerSeconds).toFixed(3)} ms server CPU per viewer-second over ${viewerSeconds} viewer-seconds`;
  if (i === 0) console.log(`summary: ${line}`);
  console.log(`summary[${pid}]: ${line}`);
});
console.log(`delivered: ${(total * 8 / 1e6 / seconds).toFixed(1)} Mbit/s on average, errors=${errors}`);
process.exit(0);
