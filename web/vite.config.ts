import { defineConfig } from 'vite';

// Preact's automatic JSX runtime through Vite's own transformer (no Babel plugin needed).
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    target: 'es2022',
    sourcemap: false,
    // hls.js and mpegts.js are large; they load only on the pages that play video.
    chunkSizeWarningLimit: 700,
  },
  server: {
    // `npm run dev` against a running videopick (default ports).
    proxy: {
      '/api': 'http://127.0.0.1:8000',
      '/files': 'http://127.0.0.1:8000',
      '/live': 'http://127.0.0.1:8000',
      '/vod': 'http://127.0.0.1:8000',
      '/recordings': 'http://127.0.0.1:8000',
      '/thumbnails': 'http://127.0.0.1:8000',
    },
  },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
  },
});
