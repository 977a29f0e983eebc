// Which live source a viewer's player tries first, and what it falls back to. Pure: the
// browser's abilities come in as `Support`, so the rules are tested without a browser.

export type SourceKind = 'hls' | 'flv';

export interface LiveSource {
  kind: SourceKind;
  url: string;
  /** How it plays: hls.js or mpegts.js over Media Source Extensions, or the browser. */
  engine: 'hls.js' | 'native' | 'mpegts.js';
}

export interface Support {
  /** Media Source Extensions (hls.js and mpegts.js need them). */
  mse: boolean;
  /** The video element plays HLS itself (Safari, iOS). */
  nativeHls: boolean;
}

/** The browser's abilities. */
export function detectSupport(): Support {
  const v = typeof document !== 'undefined' ? document.createElement('video') : null;
  const ms = (globalThis as any).ManagedMediaSource ?? (globalThis as any).MediaSource;
  return {
    mse: !!ms && typeof ms.isTypeSupported === 'function' && ms.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'),
    nativeHls: !!v && v.canPlayType('application/vnd.apple.mpegurl') !== '',
  };
}

/**
 * The sources to try, in order. HLS first (low-latency HLS when the server offers it:
 * hls.js reads that from the playlist), HTTP-FLV ("lowest latency") first when the viewer
 * asked for it. A source the browser cannot play is left out.
 */
export function liveSources(
  urls: { hls: string; flv: string },
  support: Support,
  prefer: SourceKind = 'hls',
): LiveSource[] {
  const hls: LiveSource | null = support.mse
    ? { kind: 'hls', url: urls.hls, engine: 'hls.js' }
    : support.nativeHls
      ? { kind: 'hls', url: urls.hls, engine: 'native' }
      : null;
  const flv: LiveSource | null = support.mse ? { kind: 'flv', url: urls.flv, engine: 'mpegts.js' } : null;
  const order = prefer === 'flv' ? [flv, hls] : [hls, flv];
  return order.filter((s): s is LiveSource => s !== null);
}

/** Steps through sources as they fail; each source is tried once per round. */
export class Fallback {
  private i = 0;
  private failures = 0;
  constructor(readonly sources: LiveSource[]) {}

  current(): LiveSource | null {
    return this.sources[this.i] ?? null;
  }

  /** The current source failed: the next one, or null when every one failed in a row. */
  fail(): LiveSource | null {
    this.failures++;
    if (this.failures >= this.sources.length) return null;
    this.i = (this.i + 1) % this.sources.length;
    return this.current();
  }

  /** The current source plays: failures start counting anew. */
  playing() {
    this.failures = 0;
  }

  /** Switch to a kind on request (the viewer's choice). */
  choose(kind: SourceKind): LiveSource | null {
    const j = this.sources.findIndex((s) => s.kind === kind);
    if (j < 0) return null;
    this.i = j;
    this.failures = 0;
    return this.current();
  }
}

/** One storyboard cue: from `start` to `end` seconds, this part of the sprite. */
export interface StoryboardCue {
  start: number;
  end: number;
  url: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

function vttTime(s: string): number | null {
  const m = /^(?:(\d+):)?(\d{1,2}):(\d{2})\.(\d{3})$/.exec(s.trim());
  if (!m) return null;
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

/** The cues of a WebVTT storyboard (`sprite.jpg#xywh=x,y,w,h`), sprite URLs made absolute against `base`. */
export function parseStoryboard(vtt: string, base: string): StoryboardCue[] {
  const cues: StoryboardCue[] = [];
  const blocks = vtt.replace(/\r\n/g, '\n').split(/\n\n+/);
  for (const b of blocks) {
    const lines = b.split('\n').filter((l) => l.trim() !== '');
    const ti = lines.findIndex((l) => l.includes('-->'));
    if (ti < 0 || ti + 1 >= lines.length) continue;
    const [a, z] = lines[ti].split('-->');
    const start = vttTime(a);
    const end = vttTime(z.trim().split(/\s+/)[0]);
    const m = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[ti + 1].trim());
    if (start === null || end === null || !m) continue;
    cues.push({
      start,
      end,
      url: new URL(m[1], base).toString(),
      x: Number(m[2]),
      y: Number(m[3]),
      w: Number(m[4]),
      h: Number(m[5]),
    });
  }
  return cues;
}

/** The cue covering `t` seconds. */
export function cueAt(cues: StoryboardCue[], t: number): StoryboardCue | null {
  let lo = 0;
  let hi = cues.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const c = cues[mid];
    if (t < c.start) hi = mid - 1;
    else if (t >= c.end) lo = mid + 1;
    else return c;
  }
  return null;
}
