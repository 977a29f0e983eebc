// End-to-end tests of the web app in a real Chromium (Debian's, driven by playwright-core)
// against a freshly started `videopick` on temporary ports and storage, with ffmpeg as the
// broadcaster.
//   node e2e/run.mjs [path/to/videopick]      (web/dist must be built: npm run build)
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (directory; default
// $CARGO_TARGET_DIR/screenshots; SCREENSHOTS=docs/screenshots refreshes the README's).
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const web = resolve(here, '..');
const bin = resolve(process.argv[2] ?? join(web, '../target/debug/videopick'));
const shots = resolve(
  process.env.SCREENSHOTS ?? join(process.env.CARGO_TARGET_DIR ?? join(web, '../target'), 'screenshots'),
);
const MAX_UPLOAD = 40 * 1000 * 1000;

const tmp = mkdtempSync(join(tmpdir(), 'vp-e2e-'));
const children = [];
let failures = 0;
const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

function cleanup() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {}
  }
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    log(`FAIL ${name}: ${e?.stack ?? e}`);
    throw e;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function until(what, secs, fn, every = 200) {
  const end = Date.now() + secs * 1000;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${secs} s waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Start videopick; its addresses from stdout. */
async function startServer() {
  const child = spawn(
    bin,
    [
      '--storage', join(tmp, 'data'), '--min-free-bytes', '0',
      '--rtmp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--chat-listen', '127.0.0.1:0',
      '--web-dir', join(web, 'dist'), '--tus-max-size', String(MAX_UPLOAD),
      '--hls-segment-ms', '1000', '--ladder', '360,240', '--thumbnail-secs', '5',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn' } },
  );
  children.push(child);
  child.stderr.on('data', (d) => process.env.E2E_VERBOSE && process.stderr.write(d));
  const addr = {};
  const lines = createInterface({ input: child.stdout });
  await new Promise((res, rej) => {
    child.on('exit', (code) => rej(new Error(`videopick exited: ${code}`)));
    lines.on('line', (l) => {
      let m;
      if ((m = /rtmp on rtmp:\/\/(\S+)/.exec(l))) addr.rtmp = m[1];
      if ((m = /listening on http:\/\/(\S+)/.exec(l))) addr.http = m[1];
      if ((m = /chat on http:\/\/(\S+)/.exec(l))) addr.chat = m[1];
      if (addr.rtmp && addr.http && addr.chat) res();
    });
  });
  return addr;
}

/** ffmpeg publishing a test pattern with a tone to `url` for `secs`. */
function publish(url, secs = 600) {
  const p = spawn(
    'ffmpeg',
    [
      '-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=30:duration=${secs}`,
      '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${secs}`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-g', '30', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', '64k', '-f', 'flv', url,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(p);
  return p;
}

const exited = (p, secs) =>
  new Promise((res) => {
    if (p.exitCode !== null) return res(p.exitCode);
    const t = setTimeout(() => res(null), secs * 1000);
    p.on('exit', (code) => {
      clearTimeout(t);
      res(code);
    });
  });

/** A browser context whose pages fail the run on console errors. */
async function context(browser, name, allow = null) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'ko-KR' });
  ctx.on('page', (page) => {
    page.on('console', (m) => {
      if (m.type() === 'error' && !(allow && allow.test(m.text()))) {
        failures++;
        log(`FAIL console error in ${name} at ${page.url()}: ${m.text()}`);
      }
    });
    page.on('pageerror', (e) => {
      failures++;
      log(`FAIL page error in ${name} at ${page.url()}: ${e}`);
    });
  });
  return ctx;
}

/** Seconds of playback the page's video makes in `secs` of waiting (for at least `want`). */
async function playsFor(page, selector, want, secs) {
  const start = await until('the video to start', secs, async () => {
    const t = await page.$eval(selector, (v) => v.currentTime);
    return t > 0 ? t : null;
  });
  const end = await until(`${want} s of playback`, secs, async () => {
    const t = await page.$eval(selector, (v) => v.currentTime);
    return t - start >= want ? t : null;
  });
  return end - start;
}

async function signUp(page, base, name) {
  await page.goto(`${base}/signup`);
  await page.fill('#username', name);
  await page.fill('#email', `${name}@example.com`);
  await page.fill('#password', 'correct horse battery');
  await page.click('main form button[type=submit]');
  await until('the studio after sign-up', 15, async () => {
    const err = await page.$('[data-testid=auth-error]');
    if (err) throw new Error(`sign-up refused: ${await err.textContent()}`);
    return new URL(page.url()).pathname === '/studio';
  });
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}_total `));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function main() {
  assert(statSync(join(web, 'dist/index.html')).isFile(), 'web/dist is not built (npm run build)');
  mkdirSync(shots, { recursive: true });
  const addr = await startServer();
  const base = `http://${addr.http}`;
  log(`videopick at ${base}, rtmp ${addr.rtmp}, chat ${addr.chat}`);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const owner = await context(browser, 'owner');
  const page = await owner.newPage();
  let key;
  let publisher;

  await step('home page loads empty, in Korean', async () => {
    await page.goto(base);
    await page.waitForSelector('[data-testid=no-live]');
    assert((await page.textContent('h2#live-now')) === '지금 라이브', 'Korean headings');
    await page.screenshot({ path: join(shots, 'home-empty.png') });
  });

  await step('sign up → the studio shows a stream key', async () => {
    await signUp(page, base, 'minji');
    await page.fill('#ch-slug', 'minji-live');
    await page.fill('#ch-name', '민지 라이브');
    await page.click('main form button[type=submit]');
    await page.click('[data-testid=reveal-key]');
    key = await page.getAttribute('[data-testid=stream-key]', 'data-key');
    assert(key && key.length > 16, `a key is shown: ${key}`);
    const server = await page.textContent('[data-testid=rtmp-server]');
    assert(server === `rtmp://${addr.rtmp}/live`, `the server URL names the RTMP listener: ${server}`);
    await page.screenshot({ path: join(shots, 'studio.png'), fullPage: true });
  });

  await step('ffmpeg publishes with the key → the home page lists the channel live within 5 s', async () => {
    const home = await owner.newPage();
    await home.goto(base);
    publisher = publish(`rtmp://${addr.rtmp}/live/${key}`);
    const t0 = Date.now();
    await home.waitForSelector('[data-testid=live-card]', { timeout: 15000 });
    const took = (Date.now() - t0) / 1000;
    assert(took <= 5, `listed live after ${took} s`);
    log(`     listed live after ${took.toFixed(1)} s`);
    // Viewer count and live duration update by themselves.
    const d1 = await home.textContent('[data-testid=live-duration]');
    await home.waitForTimeout(1500);
    const d2 = await home.textContent('[data-testid=live-duration]');
    assert(d1 !== d2, `live duration ticks: ${d1} → ${d2}`);
    await home.close();
  });

  await step('the live page plays HLS, then HTTP-FLV when switched', async () => {
    await page.goto(`${base}/c/minji-live/live`);
    await page.waitForSelector('[data-testid=live-player][data-source=hls]');
    const hls = await playsFor(page, '[data-testid=live-video]', 5, 60);
    log(`     HLS played ${hls.toFixed(1)} s`);
    await page.click('[data-testid=use-flv]');
    await page.waitForSelector('[data-testid=live-player][data-source=flv]');
    const flv = await playsFor(page, '[data-testid=live-video]', 5, 60);
    log(`     HTTP-FLV played ${flv.toFixed(1)} s`);
    await page.click('text=통계');
    await page.waitForSelector('[data-testid=stats]');
    const latency = await until('a latency figure', 10, async () => {
      const v = await page.textContent('[data-testid=stat-latency]');
      return /^\d+\.\d s$/.test(v) ? v : null;
    });
    log(`     stats overlay: latency ${latency}`);
    await page.screenshot({ path: join(shots, 'live.png') });
  });

  await step('when HLS fails, the player falls back to HTTP-FLV by itself', async () => {
    // The failures this test makes on purpose are the only console errors allowed.
    const ctx = await context(browser, 'fallback', /Failed to load resource: the server responded with a status of 503/);
    const p = await ctx.newPage();
    // Every playlist request fails (hls.js logs nothing to the console for it).
    await p.route('**/*.m3u8', (r) => r.fulfill({ status: 503, body: 'down' }));
    await p.goto(`${base}/c/minji-live/live`);
    await p.waitForSelector('[data-testid=live-player][data-source=flv]', { timeout: 30000 });
    const played = await playsFor(p, '[data-testid=live-video]', 3, 30);
    log(`     fell back to HTTP-FLV, played ${played.toFixed(1)} s`);
    await ctx.close();
  });

  await step('a viewer chats: the message reaches the owner within 1 s; deleted on both; a ban is shown', async () => {
    const viewerCtx = await context(browser, 'viewer');
    const viewer = await viewerCtx.newPage();
    await signUp(viewer, base, 'jiho');
    await viewer.goto(`${base}/c/minji-live/live`);
    await viewer.waitForSelector('[data-testid=chat-connection]:has-text("연결됨")');
    await page.waitForSelector('[data-testid=chat-connection]:has-text("연결됨")');
    await viewer.fill('[data-testid=chat-input]', '안녕하세요 민지님!');
    const t0 = Date.now();
    await viewer.press('[data-testid=chat-input]', 'Enter');
    const onOwner = page.locator('[data-testid=chat-message]', { hasText: '안녕하세요 민지님!' });
    await onOwner.waitFor({ timeout: 5000 });
    const took = Date.now() - t0;
    assert(took <= 1000, `the message took ${took} ms to reach the owner`);
    log(`     delivered in ${took} ms`);
    await page.screenshot({ path: join(shots, 'live-chat.png') });
    // The owner moderates: delete.
    await onOwner.locator('[data-testid=mod-menu]').click();
    await onOwner.locator('[data-testid=mod-delete]').click();
    await onOwner.waitFor({ state: 'detached', timeout: 3000 });
    await viewer
      .locator('[data-testid=chat-message]', { hasText: '안녕하세요 민지님!' })
      .waitFor({ state: 'detached', timeout: 3000 });
    // Another message, then a ban.
    await viewer.fill('[data-testid=chat-input]', '두 번째');
    await viewer.press('[data-testid=chat-input]', 'Enter');
    const second = page.locator('[data-testid=chat-message]', { hasText: '두 번째' });
    await second.waitFor({ timeout: 3000 });
    await second.locator('[data-testid=mod-menu]').click();
    await second.locator('[data-testid=mod-ban]').click();
    await viewer.waitForSelector('[data-testid=chat-error][data-code=banned]', { timeout: 5000 });
    const text = await viewer.textContent('[data-testid=chat-error]');
    assert(text.includes('강퇴'), `the ban is readable: ${text}`);
    assert(await viewer.isDisabled('[data-testid=chat-input]'), 'a banned user cannot type');
    await viewerCtx.close();
  });

  let watching;
  await step('the owner rotates the key → the broadcast ends and the old key is refused', async () => {
    // A viewer's live page stays open through the end of the broadcast.
    watching = await owner.newPage();
    await watching.goto(`${base}/c/minji-live/live`);
    await watching.waitForSelector('[data-testid=live-player]');
    await page.goto(`${base}/studio`);
    page.once('dialog', (d) => d.accept());
    await page.click('[data-testid=rotate-key]');
    await until('the new key', 10, async () => {
      const k = await page.getAttribute('[data-testid=stream-key]', 'data-key');
      return k && k !== key;
    });
    const code = await exited(publisher, 20);
    assert(code !== null, 'the publisher was cut off');
    const again = publish(`rtmp://${addr.rtmp}/live/${key}`, 5);
    const code2 = await exited(again, 20);
    assert(code2 !== 0 && code2 !== null, `ffmpeg with the old key is refused (exit ${code2})`);
  });

  await step('the ended broadcast links its replay once it is ready, and the replay plays', async () => {
    await watching.waitForSelector('[data-testid=offline]', { timeout: 15000 });
    await watching.waitForSelector('[data-testid=replay-link]', { timeout: 90000 });
    await watching.click('[data-testid=replay-link]');
    await watching.waitForSelector('[data-testid=vod-video]');
    await watching.click('[data-testid=play]');
    await playsFor(watching, '[data-testid=vod-video]', 2, 30);
    await watching.close();
  });

  // A ~30 MB MP4 (720p, high bitrate) to upload.
  const clip = join(tmp, 'clip.mp4');
  spawnSync('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30:duration=20',
    '-f', 'lavfi', '-i', 'sine=frequency=330:duration=20',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '12M', '-maxrate', '12M', '-bufsize', '12M', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-movflags', '+faststart', clip,
  ]);
  const clipSize = statSync(clip).size;
  log(`     clip.mp4 is ${(clipSize / 1e6).toFixed(1)} MB`);

  await step('an upload resumes after a page reload, reaches 100 %, becomes ready and plays (quality menu, storyboard, keys, resume)', async () => {
    await page.goto(`${base}/studio`);
    const cdp = await owner.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * 1024 * 1024,
    });
    const before = await metric(base, 'videopick_tus_received_bytes');
    await page.setInputFiles('[data-testid=upload-input]', clip);
    await until('40 % of the upload', 30, async () => Number(await page.getAttribute('[data-testid=upload-progress]', 'value')) >= 40);
    await page.screenshot({ path: join(shots, 'studio-upload.png'), fullPage: true });
    await page.reload();
    await cdp.detach().catch(() => undefined);
    await page.waitForSelector('[data-testid=unfinished]');
    await page.setInputFiles('[data-testid=upload-input]', clip);
    await page.waitForSelector('[data-testid=upload-item][data-state=done]', { timeout: 60000 });
    assert((await page.getAttribute('[data-testid=upload-progress]', 'value')) === '100', 'progress reaches 100 %');
    const received = (await metric(base, 'videopick_tus_received_bytes')) - before;
    log(`     the server stored ${(received / 1e6).toFixed(1)} MB for a ${(clipSize / 1e6).toFixed(1)} MB file`);
    assert(received < 1.2 * clipSize, `resumed, not restarted: ${received} bytes for ${clipSize}`);
    const row = page.locator('[data-testid=my-video][data-title=clip]');
    await until('the video to be ready', 240, async () => (await row.getAttribute('data-state')) === 'ready', 1000);
    const id = await row.getAttribute('data-id');
    await page.goto(`${base}/v/${id}`);
    await page.click('[data-testid=play]');
    await playsFor(page, '[data-testid=vod-video]', 3, 30);
    const video = await (await fetch(`${base}/api/v1/videos/${id}`)).json();
    const options = await until(`the quality menu (${JSON.stringify(video)})`, 10, async () => {
      const o = await page.$$eval('[data-testid=quality] option', (o) => o.map((x) => x.textContent));
      return o.length >= 3 ? o : null;
    });
    log(`     quality menu: ${options.join(', ')}`);
    // Storyboard thumbnails over the seek bar.
    const seek = await page.$('.seek');
    const box = await seek.boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    const sprite = await page.waitForSelector('[data-testid=storyboard] .sprite', { timeout: 5000 });
    const bg = await sprite.evaluate((e) => e.style.backgroundImage);
    assert(bg.includes('storyboard.jpg'), `a storyboard sprite: ${bg}`);
    // Keyboard: space pauses, → skips 5 s.
    await page.focus('[data-testid=vod-player]');
    await page.keyboard.press('Space');
    await until('paused by space', 5, () => page.$eval('[data-testid=vod-video]', (v) => v.paused));
    await page.$eval('[data-testid=vod-video]', (v) => (v.currentTime = 3));
    await until('the seek to 3 s', 5, () => page.$eval('[data-testid=vod-video]', (v) => !v.seeking && Math.abs(v.currentTime - 3) < 0.5));
    const t1 = await page.$eval('[data-testid=vod-video]', (v) => v.currentTime);
    await page.keyboard.press('ArrowRight');
    const t2 = await until('5 s further', 5, async () => {
      const t = await page.$eval('[data-testid=vod-video]', (v) => v.currentTime);
      return t >= t1 + 4.5 ? t : null;
    });
    // Where the viewer left off is remembered: a reload resumes there.
    await page.$eval('[data-testid=vod-video]', (v) => v.dispatchEvent(new Event('pause')));
    await page.reload();
    await page.waitForSelector('[data-testid=resumed]', { timeout: 10000 });
    const t3 = await page.$eval('[data-testid=vod-video]', (v) => v.currentTime);
    assert(Math.abs(t3 - Math.floor(t2)) <= 1, `resumed at ${t3} s, left at ${t2} s`);
    await page.screenshot({ path: join(shots, 'watch.png') });
  });

  await step('an upload pauses, resumes and cancels; a cancelled upload leaves no video', async () => {
    await page.goto(`${base}/studio`);
    const cdp = await owner.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2 * 1024 * 1024,
    });
    const again = join(tmp, 'again.mp4');
    writeFileSync(again, Buffer.alloc(12 * 1000 * 1000, 7));
    await page.setInputFiles('[data-testid=upload-input]', again);
    const item = page.locator('[data-testid=upload-item]', { hasText: 'again.mp4' });
    const pct = async () => Number(await item.locator('[data-testid=upload-progress]').getAttribute('value'));
    await until('some progress', 20, async () => (await pct()) >= 10);
    await item.locator('button', { hasText: '일시정지' }).click();
    await item.and(page.locator('[data-state=paused]')).waitFor();
    const paused = await pct();
    await page.waitForTimeout(1500);
    assert((await pct()) === paused, 'no progress while paused');
    await item.locator('button', { hasText: '이어서 올리기' }).click();
    await until('progress after resuming', 20, async () => (await pct()) > paused);
    await item.locator('button', { hasText: '취소' }).click();
    await item.and(page.locator('[data-state=cancelled]')).waitFor();
    await cdp.detach().catch(() => undefined);
    await until('its video to go', 15, async () => (await page.locator('[data-testid=my-video][data-title=again]').count()) === 0);
  });

  await step('a text file named .mp4 fails with its reason; an oversized file is refused before any byte', async () => {
    const fake = join(tmp, 'notes.mp4');
    writeFileSync(fake, 'this is not a video\n'.repeat(100));
    const big = join(tmp, 'huge.mp4');
    writeFileSync(big, Buffer.alloc(MAX_UPLOAD + 1));
    await page.goto(`${base}/studio`);
    const sent = [];
    page.on('request', (r) => r.url().includes('/files/') && sent.push(`${r.method()} ${r.url()}`));
    await page.setInputFiles('[data-testid=upload-input]', big);
    await page.waitForSelector('[data-testid=upload-error]');
    const msg = await page.textContent('[data-testid=upload-error]');
    assert(msg.includes('너무 큽니다'), `a readable refusal: ${msg}`);
    assert(sent.length === 0, `no request for the oversized file: ${sent}`);
    await page.setInputFiles('[data-testid=upload-input]', fake);
    const row = page.locator('[data-testid=my-video][data-title=notes]');
    await until('the fake video to fail', 90, async () => (await row.getAttribute('data-state')) === 'failed', 1000);
    const why = await row.locator('[data-testid=video-state]').textContent();
    assert(why.includes('처리 실패') && why.length > '처리 실패: '.length, `the reason is shown: ${why}`);
    await page.screenshot({ path: join(shots, 'studio-videos.png'), fullPage: true });
  });

  await step('home, channel and video pages in English, phone-sized too', async () => {
    await page.goto(base);
    await page.selectOption('header select', 'en');
    await page.waitForSelector('text=Latest videos');
    await page.screenshot({ path: join(shots, 'home.png') });
    await page.goto(`${base}/c/minji-live`);
    await page.waitForSelector('h1');
    await page.screenshot({ path: join(shots, 'channel.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/c/minji-live/live`);
    await page.waitForSelector('[data-testid=chat]');
    await page.screenshot({ path: join(shots, 'phone-live.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    for (const path of ['/signin', '/signup', '/nowhere']) {
      await page.goto(`${base}${path}`);
      await page.waitForSelector('main h1');
    }
    await page.goto(`${base}/signin`);
    await page.screenshot({ path: join(shots, 'signin.png') });
  });

  await browser.close();
}

main()
  .catch(() => {
    failures++;
  })
  .finally(() => {
    log(failures ? `${failures} failure(s)` : 'all browser tests passed');
    cleanup();
    process.exit(failures ? 1 : 0);
  });
