// Compress the build's text files (brotli and gzip beside each), so the server sends them
// compressed without compressing on every request.   node scripts/compress.mjs dist
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

const root = process.argv[2] ?? 'dist';
const text = /\.(js|mjs|css|html|svg|json|txt|webmanifest)$/;
let n = 0;
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (text.test(name)) {
      const data = readFileSync(p);
      if (data.length < 512) continue;
      writeFileSync(`${p}.br`, brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
      writeFileSync(`${p}.gz`, gzipSync(data, { level: 9 }));
      n++;
    }
  }
};
walk(root);
console.log(`compressed ${n} files in ${root}`);
