// N HTTP-FLV viewers read by Node's own HTTP client (llhttp, libuv's 64 KiB reads): an
// independent reader to check that `live-load` is not what shapes a server's cost.
// Counts bytes only, as a player's network stack does before the demuxer runs.
//   usage: node flv-viewers.mjs <url> <viewers> <seconds> [server-pid]
// Prints per second the viewers attached and Mbit/s delivered, and with a pid the
// server's CPU per viewer-second over the window after every viewer has attached.
import http from "node:http";
import { readFileSync } from "node:fs";

const [url, viewersArg, secondsArg, pidArg] = process.argv.slice(2);
const viewers = Number(viewersArg ?? 100);
const seconds = Number(secondsArg ?? 10);
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

let attached = 0;
let bytes = 0;
let errors = 0;

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}

function open() {
  const req = http.get(url, { agent }, (res) => {
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

const pid = pidArg ? Number(pidArg) : undefined;
const cpu0 = pid ? cpuMs(pid) : 0;
const t0 = Date.now();
let last = bytes;
let viewerSeconds = 0;
for (let s = 1; s <= seconds; s++) {
  await new Promise((r) => setTimeout(r, t0 + s * 1000 - Date.now()));
  viewerSeconds += attached;
  console.log(
    `t=${s}s viewers=${attached}/${viewers} errors=${errors} delivered=${((bytes - last) * 8 / 1e6).toFixed(1)} Mbit/s`,
  );
  last = bytes;
}
if (pid) {
  const used = cpuMs(pid) - cpu0;
  console.log(
    `summary: ${(used / viewerSeconds).toFixed(3)} ms server CPU per viewer-second over ${viewerSeconds} viewer-seconds`,
  );
}
process.exit(0);
