#!/usr/bin/env bash
# Build the web app (web/dist) when it is missing or older than its sources: `npm ci` when
# web/node_modules is missing or older than the lockfile, then `npm run build` (type check,
# Vite build, precompression). Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/../web"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "==> installing Node.js (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  echo "==> npm ci in web/"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi

stale=0
if [ ! -f dist/index.html ]; then
  stale=1
elif [ -n "$(find src public index.html vite.config.ts tsconfig.json package-lock.json -newer dist/index.html -print -quit 2>/dev/null)" ]; then
  stale=1
fi
if [ "$stale" = 1 ]; then
  echo "==> building the web app (web/dist)"
  npm run build --silent
fi
