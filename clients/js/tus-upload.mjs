// Upload a file with tus-js-client (the npm package browsers and Node apps use).
//   node tus-upload.mjs <endpoint> <file> <chunkSize|single|parallel4> [abortAt(0..1)]
// Env: TUS_TOKEN (sent as Authorization: Bearer), TUS_METADATA (JSON object merged into
// the upload's metadata).
// Prints the upload URL on success; exits non-zero with the error otherwise.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import * as tus from 'tus-js-client';

const [endpoint, file, chunk, abortAt] = process.argv.slice(2);
const data = readFileSync(file);
const parallel = chunk === 'parallel4' ? 4 : 1;
const chunkSize = chunk === 'single' || parallel > 1 ? Infinity : Number(chunk);
let aborted = false;

const upload = new tus.Upload(data, {
  endpoint,
  chunkSize,
  // Several partial uploads at once, then a final one (the concatenation extension).
  parallelUploads: parallel,
  metadata: {
    filename: basename(file),
    filetype: 'application/octet-stream',
    ...JSON.parse(process.env.TUS_METADATA || '{}'),
  },
  headers: process.env.TUS_TOKEN ? { Authorization: `Bearer ${process.env.TUS_TOKEN}` } : {},
  retryDelays: [0, 200, 500],
  onError(err) {
    console.error(`upload failed: ${err}`);
    process.exit(1);
  },
  onProgress(sent, total) {
    if (abortAt && !aborted && sent / total >= Number(abortAt)) {
      aborted = true;
      // Abort mid-request, then resume from the server's offset (HEAD) a moment later.
      upload.abort().then(() => setTimeout(() => upload.start(), 100));
    }
  },
  onSuccess() {
    console.log(upload.url);
    if (abortAt && !aborted) {
      console.error('never aborted');
      process.exit(2);
    }
  },
});
upload.start();
