#!/usr/bin/env bash
# The main job: build the web app if needed, then run the all-in-one `videopick` server on
# embedded defaults (storage in ./data, RTMP 1935, web app + API + media on 8000, chat 3001).
# Extra arguments go to videopick (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/web-build.sh
exec cargo run --release -p videopick-examples --bin videopick -- "$@"
