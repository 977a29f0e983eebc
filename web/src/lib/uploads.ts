// Uploads from the studio with tus-js-client: several files at once, progress, speed and
// time left, pause/resume, resuming after a page reload (tus fingerprints kept in the
// browser: the same file chosen again continues where it stopped), cancel.
import * as tus from 'tus-js-client';
import type { Site } from './api';
import { Store } from './store';

export type UploadState = 'uploading' | 'paused' | 'done' | 'failed' | 'cancelled';

export interface UploadItem {
  key: number;
  name: string;
  size: number;
  sent: number;
  /** Bytes per second, smoothed. */
  speed: number;
  state: UploadState;
  /** Why it failed (an i18n key or the server's message). */
  error?: string;
  errorKey?: string;
  /** Where a resumed upload started again. */
  resumedAt?: number;
  upload?: tus.Upload;
}

export const uploads = new Store<UploadItem[]>([]);
let nextKey = 1;

function update(key: number, change: Partial<UploadItem>) {
  uploads.set(uploads.get().map((u) => (u.key === key ? { ...u, ...change } : u)));
}

/** The server's words from a tus error (its answer body), else the error's. */
function reason(err: Error): string {
  const body = (err as tus.DetailedError).originalResponse?.getBody?.();
  if (body && body.length < 300) return body.trim();
  return err.message;
}

/** Start uploading `files` to `channel`. Files over the site's limit are refused here, before any byte goes. */
export function addFiles(files: File[], channel: string, site: Site) {
  for (const file of files) {
    const key = nextKey++;
    const item: UploadItem = { key, name: file.name, size: file.size, sent: 0, speed: 0, state: 'uploading' };
    if (site.max_upload_bytes && file.size > site.max_upload_bytes) {
      uploads.set([...uploads.get(), { ...item, state: 'failed', errorKey: 'upload.tooLarge' }]);
      continue;
    }
    let last = { t: performance.now(), sent: 0 };
    const upload = new tus.Upload(file, {
      endpoint: new URL(site.upload_url, window.location.href).toString(),
      chunkSize: 8 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      removeFingerprintOnSuccess: true,
      metadata: {
        filename: file.name,
        filetype: file.type || 'application/octet-stream',
        title: file.name.replace(/\.[^.]+$/, ''),
        channel,
      },
      onProgress(sent) {
        const now = performance.now();
        const dt = (now - last.t) / 1000;
        if (dt >= 0.25) {
          const rate = (sent - last.sent) / dt;
          const prev = uploads.get().find((u) => u.key === key)?.speed ?? 0;
          update(key, { sent, speed: prev ? prev * 0.7 + rate * 0.3 : rate });
          last = { t: now, sent };
        } else {
          update(key, { sent });
        }
      },
      onSuccess() {
        update(key, { sent: file.size, state: 'done', speed: 0 });
      },
      onError(err) {
        update(key, { state: 'failed', error: reason(err), speed: 0 });
      },
    });
    uploads.set([...uploads.get(), { ...item, upload }]);
    void upload.findPreviousUploads().then((previous) => {
      if (previous.length > 0) {
        upload.resumeFromPreviousUpload(previous[0]);
        update(key, { resumedAt: -1 });
      }
      upload.start();
    });
  }
}

export function pause(key: number) {
  const u = uploads.get().find((x) => x.key === key);
  if (u?.upload && u.state === 'uploading') {
    void u.upload.abort();
    update(key, { state: 'paused', speed: 0 });
  }
}

export function resume(key: number) {
  const u = uploads.get().find((x) => x.key === key);
  if (u?.upload && (u.state === 'paused' || u.state === 'failed') && !u.errorKey) {
    u.upload.start();
    update(key, { state: 'uploading', error: undefined });
  }
}

/** Stop and remove it on the server too (its video goes with it). */
export function cancel(key: number) {
  const u = uploads.get().find((x) => x.key === key);
  if (u?.upload && u.state !== 'done') void u.upload.abort(true).catch(() => undefined);
  update(key, { state: 'cancelled', speed: 0 });
}

export function clearFinished() {
  uploads.set(uploads.get().filter((u) => u.state === 'uploading' || u.state === 'paused'));
}

/** Uploads this browser started and did not finish (to resume, choose the same file again). */
export async function unfinished(): Promise<{ name: string; size: number }[]> {
  try {
    const all = await tus.defaultOptions.urlStorage.findAllUploads();
    return all.map((p) => ({ name: String(p.metadata?.filename ?? '?'), size: Number(p.size ?? 0) }));
  } catch {
    return [];
  }
}
