// Concurrent uploads with the real client: N tus-js-client uploads of SIZE MiB at once,
// each one POST and one streaming PATCH (tus-js-client's default chunkSize), from one
// random buffer in memory (so the client does not read a disk).
//   usage: node tus-load.mjs --endpoint http://127.0.0.1:18001/files/ --uploads 50 \
//            --size-mb 100 [--server-pid PID] [--token JWT]
// Prints one JSON line: uploads done/failed, seconds, aggregate MB/s, the sha256 of the
// bytes sent (every stored file must have it) and the upload URLs; with a pid, the
// server's CPU (user and system) per GiB over the uploads and its peak RSS.
import { createHash, randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const endpoint = args.endpoint ?? "http://127.0.0.1:18001/files/";
const uploads = Number(args.uploads ?? 50);
const size = Number(args["size-mb"] ?? 100) * 1024 * 1024;
const pid = args["server-pid"] ? Number(args["server-pid"]) : undefined;

const data = randomFillSync(Buffer.alloc(size));
const sha256 = createHash("sha256").update(data).digest("hex");

const sample = () => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    userMs: Number(f[11]) * 10,
    sysMs: Number(f[12]) * 10,
    hwmKiB: Number(/VmHWM:\s+(\d+)/.exec(status)[1]),
    rssKiB: Number(/VmRSS:\s+(\d+)/.exec(status)[1]),
  };
};

function one(i) {
  return new Promise((resolve) => {
    const up = new tus.Upload(data, {
      endpoint,
      metadata: { filename: `load-${i}.bin`, filetype: "application/octet-stream" },
      headers: args.token ? { Authorization: `Bearer ${args.token}` } : {},
      retryDelays: [],
      onError: (err) => resolve({ ok: false, error: String(err) }),
      onSuccess: () => resolve({ ok: true, url: up.url }),
    });
    up.start();
  });
}

const before = pid ? sample() : undefined;
const t0 = process.hrtime.bigint();
const results = await Promise.all(Array.from({ length: uploads }, (_, i) => one(i)));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const after = pid ? sample() : undefined;
const done = results.filter((r) => r.ok);
const gib = (done.length * size) / 2 ** 30;
const out = {
  uploads,
  done: done.length,
  failed: results.filter((r) => !r.ok).map((r) => r.error).slice(0, 3),
  seconds: Number(secs.toFixed(2)),
  mb_per_s: Number(((done.length * size) / 1e6 / secs).toFixed(0)),
};
if (pid) {
  out.user_s_per_gib = Number(((after.userMs - before.userMs) / 1000 / gib).toFixed(3));
  out.sys_s_per_gib = Number(((after.sysMs - before.sysMs) / 1000 / gib).toFixed(3));
  out.cpu_s_per_gib = Number((out.user_s_per_gib + out.sys_s_per_gib).toFixed(3));
  out.peak_rss_mib = Number((after.hwmKiB / 1024).toFixed(1));
}
out.sha256 = sha256;
out.urls = done.map((r) => r.url);
console.log(JSON.stringify(out));
