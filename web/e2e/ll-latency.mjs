// Latency of live HLS in hls.js (low-latency mode), in a real Chromium, against a freshly
// started `media-server` with ffmpeg publishing in real time: for each variant, how far
// the picture on screen is behind the wall clock (`Date.now() − hls.playingDate`, where
// the playlist's EXT-X-PROGRAM-DATE-TIME is the ingest wall clock) and behind the live
// edge (`hls.latency`), sampled 4 times a second after playback settles; and every stall
// (the video element waiting for data, or hls.js reporting a stalled buffer).
//   node e2e/ll-latency.mjs [path/to/media-server] [--parts 200,333,500] [--ts] [--secs 20]
//                           [--max <seconds>]   (exit 1 if an LL-HLS median is above it or
//                                                 if LL-HLS playback stalled)
// Env: CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const bin = resolve(args[0] && !args[0].startsWith('--') ? args[0] : join(web, '../target/debug/media-server'));
const parts = opt('--parts', '333').split(',').map(Number);
const withTs = args.includes('--ts');
const secs = Number(opt('--secs', '20'));
const max = opt('--max', null);
const hlsJs = readFileSync(createRequire(import.meta.url).resolve('hls.js/dist/hls.min.js'), 'utf8');

const tmp = mkdtempSync(join(tmpdir(), 'vp-ll-'));
const children = [];
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  rmSync(tmp, { recursive: true, force: true });
});

async function startServer(partMs) {
  const child = spawn(
    bin,
    [
      '--storage', join(tmp, `data-${partMs}`), '--min-free-bytes', '0',
      '--rtmp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--transcode-workers', '0',
      '--hls-segment-ms', '1000', '--hls-part-ms', String(partMs),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'warn' } },
  );
  children.push(child);
  const addr = {};
  const lines = createInterface({ input: child.stdout });
  await new Promise((res, rej) => {
    child.on('exit', (code) => rej(new Error(`media-server exited: ${code}`)));
    lines.on('line', (l) => {
      let m;
      if ((m = /rtmp on rtmp:\/\/(\S+)/.exec(l))) addr.rtmp = m[1];
      if ((m = /listening on http:\/\/(\S+)/.exec(l))) addr.http = m[1];
      if (addr.rtmp && addr.http) res();
    });
  });
  return { child, addr };
}

function publish(url) {
  const p = spawn(
    'ffmpeg',
    [
      '-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p',
      '-b:v', '1500k', '-c:a', 'aac', '-f', 'flv', url,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  children.push(p);
  return p;
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * q))] : NaN;
};

/** Play `url` in hls.js for `secs`; medians of the wall-clock delay and live-edge latency. */
async function measure(browser, origin, url) {
  // The stream is listed once its first segment is complete.
  for (let i = 0; ; i++) {
    const r = await fetch(url).catch(() => null);
    if (r?.ok) break;
    if (i > 150) throw new Error(`${url} never appeared`);
    await new Promise((res) => setTimeout(res, 200));
  }
  const page = await browser.newPage();
  await page.route(`${origin}/player.html`, (r) =>
    r.fulfill({ contentType: 'text/html', body: '<!doctype html><video muted autoplay playsinline></video>' }),
  );
  await page.goto(`${origin}/player.html`);
  await page.addScriptTag({ content: hlsJs });
  await page.evaluate((src) => {
    const video = document.querySelector('video');
    const hls = new window.Hls({ lowLatencyMode: true, liveDurationInfinity: true, maxLiveSyncPlaybackRate: 1.5 });
    window.errors = [];
    window.stalls = 0;
    window.settled = false;
    hls.on(window.Hls.Events.ERROR, (_e, d) => {
      if (d.fatal) window.errors.push(d.details);
      else if (window.settled && d.details === 'bufferStalledError') window.stalls++;
    });
    video.addEventListener('waiting', () => {
      if (window.settled) window.stalls++;
    });
    hls.loadSource(src);
    hls.attachMedia(video);
    window.hls = hls;
    video.play().catch(() => {});
  }, url);
  // Let playback start and settle, then sample once a second.
  await page.waitForFunction(
    () => window.errors.length || (window.hls?.playingDate && document.querySelector('video').currentTime > 1),
    null,
    { timeout: 30000 },
  );
  await page.waitForTimeout(4000);
  await page.evaluate(() => (window.settled = true));
  const wall = [];
  const edge = [];
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    const s = await page.evaluate(() => ({
      wall: (Date.now() - window.hls.playingDate.getTime()) / 1000,
      edge: window.hls.latency,
      errors: window.errors,
    }));
    if (s.errors.length) throw new Error(`hls.js: ${s.errors.join(', ')}`);
    wall.push(s.wall);
    edge.push(s.edge);
    await page.waitForTimeout(250);
  }
  const stalls = await page.evaluate(() => window.stalls);
  await page.close();
  return { wall: quantile(wall, 0.5), p95: quantile(wall, 0.95), edge: quantile(edge, 0.5), stalls };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
  ],
});
let failed = false;
console.log('variant              behind the wall clock (median / p95)   behind the live edge   stalls');
for (const partMs of parts) {
  const { child, addr } = await startServer(partMs);
  const pub = publish(`rtmp://${addr.rtmp}/live/cam`);
  const origin = `http://${addr.http}`;
  const runs = [[`LL-HLS ${partMs} ms parts`, `${origin}/live/cam.m3u8`, true]];
  if (withTs) runs.push([`TS HLS (1 s segs)`, `${origin}/live/cam.m3u8?format=ts`, false]);
  for (const [name, url, ll] of runs) {
    const r = await measure(browser, origin, url);
    console.log(
      `${name.padEnd(21)}${r.wall.toFixed(2).padStart(6)} s / ${r.p95.toFixed(2)} s${' '.repeat(22)}${r.edge
        .toFixed(2)
        .padStart(6)} s${String(r.stalls).padStart(10)}`,
    );
    if (ll && max !== null && !(r.wall <= Number(max))) {
      console.log(`FAIL: LL-HLS is ${r.wall.toFixed(2)} s behind the wall clock (more than ${max} s)`);
      failed = true;
    }
    if (ll && max !== null && r.stalls > 0) {
      console.log(`FAIL: LL-HLS playback stalled ${r.stalls} times`);
      failed = true;
    }
  }
  pub.kill('SIGKILL');
  child.kill('SIGKILL');
}
await browser.close();
process.exit(failed ? 1 : 0);
