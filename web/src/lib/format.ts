// Numbers and times as people read them.

/** `1:02:03` or `2:03`. */
export function duration(ms: number | null | undefined): string {
  if (ms == null || !isFinite(ms) || ms < 0) return '';
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** Bytes as `12.3 MB`. */
export function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Seconds left as `1:05` (empty when unknown). */
export function eta(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) return '';
  return duration(seconds * 1000);
}

/** A count in the viewer's language (`1,234` / `1.2만` is left to Intl). */
export function count(n: number, lang: string): string {
  return new Intl.NumberFormat(lang, { notation: n >= 10000 ? 'compact' : 'standard' }).format(n);
}
