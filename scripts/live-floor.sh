#!/usr/bin/env bash
# Live fan-out against the kernel's floor, side by side: for each write interval, rounds of
#   floor   loopback-floor (one burst per interval, one writev per viewer),
#   spread  loopback-floor --spread (the same writes spread across the interval),
#   flv     media-server, HTTP-FLV viewers,
#   rtmp    media-server, RTMP viewers,
# each read by live-load (browser-like reads) with N viewers of one stream. Servers on
# core 0, load (and the publisher, for media-server) on core 1. Prints CPU per
# viewer-second of each, and the media-server rows' delay and RSS.
#   usage: scripts/live-floor.sh [viewers] [intervals, comma-separated] [rounds] [seconds] [kbps]
#   MEDIA_SERVER=path/to/media-server measures another build; CASES="floor flv" a subset;
#   BEFORE=path/to/media-server adds cases before-flv and before-rtmp (another build);
#   READER=node reads HTTP-FLV with Node's HTTP client (clients/js/flv-viewers.mjs) instead
#   of live-load, to check that the load tool does not shape the result (no delay figures).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers="${1:-1000}"
intervals="${2:-20,100,350}"
rounds="${3:-2}"
secs="${4:-12}"
kbps="${5:-2500}"
cases="${CASES:-floor spread flv rtmp}"
cargo build --release -q -p videopick-examples --bin media-server
cargo build --release -q -p videopick-benches --bin loopback-floor --bin live-load
server_bin="${MEDIA_SERVER:-target/release/media-server}"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 20000
ramp=$(( viewers / 1000 + 2 ))

floor() { # interval [extra flags]
  local out
  taskset -c 0 target/release/loopback-floor --listen 127.0.0.1:19400 --viewers "$viewers" \
    --interval-ms "$1" --bitrate-kbps "$kbps" --seconds "$secs" "${@:2}" >"$work/floor.out" &
  local f=$!
  if [ "${READER:-}" = node ]; then
    taskset -c 1 node clients/js/flv-viewers.mjs http://127.0.0.1:19400/live/load.flv "$viewers" \
      $(( secs + ramp + 4 )) >/dev/null 2>&1 &
  else
    taskset -c 1 target/release/live-load --http 127.0.0.1:19400 --protocol http \
      --viewers "$viewers" --ramp-per-sec 2000 --seconds $(( secs + ramp + 4 )) >/dev/null 2>&1 &
  fi
  local l=$!
  wait "$f" || true
  kill "$l" 2>/dev/null || true; wait "$l" 2>/dev/null || true
  out=$(cat "$work/floor.out")
  echo "$out" | sed -E 's/^floor: ([0-9.]+) ms.*core ([0-9]+) %, ([0-9]+) short.*/\1 ms (core \2 %, \3 short writes)/'
}

server() { # interval protocol [binary]
  rm -rf "$work/data"
  taskset -c 0 "${3:-$server_bin}" --rtmp 127.0.0.1:19350 --http 127.0.0.1:18000 --storage "$work/data" \
    --transcode-workers 0 --hls false --write-interval-ms "$1" >/dev/null 2>&1 &
  local s=$!
  pids+=("$s")
  until curl -sf -o /dev/null http://127.0.0.1:18000/api/streams; do sleep 0.2; done
  if [ "${READER:-}" = node ]; then
    taskset -c 1 target/release/live-load --rtmp 127.0.0.1:19350 --publish --viewers 0 \
      --bitrate-kbps "$kbps" --seconds $(( secs + ramp + 6 )) >/dev/null 2>&1 &
    local p=$!
    sleep 1
    taskset -c 1 node clients/js/flv-viewers.mjs http://127.0.0.1:18000/live/load.flv "$viewers" \
      "$secs" "$s" >"$work/load.out" 2>&1 || true
    kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  else
    taskset -c 1 target/release/live-load --rtmp 127.0.0.1:19350 --http 127.0.0.1:18000 --publish \
      --viewers "$viewers" --protocol "$2" --ramp-per-sec 2000 --bitrate-kbps "$kbps" \
      --seconds "$secs" --server-pid "$s" >"$work/load.out" 2>&1 || true
  fi
  kill "$s"; wait "$s" 2>/dev/null || true
  local sum lags rss behind
  sum=$(sed -nE 's/^summary: ([0-9.]+) ms.*/\1/p' "$work/load.out")
  lags=$(awk '/^t=/ && !/^t=  *[12]s/ { for (i = 1; i <= NF; i++) { if ($i ~ /^lag_avg=/) { sub("lag_avg=", "", $i); sub("ms", "", $i); a += $i; n++ } if ($i ~ /^lag_max=/) { sub("lag_max=", "", $i); sub("ms", "", $i); if ($i + 0 > m) m = $i + 0 } } } END { printf "%d / %d ms", (n ? a / n : 0), m }' "$work/load.out")
  rss=$(tail -n 2 "$work/load.out" | sed -nE 's/.*server_rss=([0-9.]+)MB.*/\1/p' | head -1)
  behind=$(tail -n 2 "$work/load.out" | sed -nE 's/.*behind=([0-9]+) errors=([0-9]+).*/behind \1, errors \2/p' | head -1)
  echo "${sum:-?} ms (delay avg/max $lags, RSS ${rss:-?} MB, $behind)"
}

for interval in ${intervals//,/ }; do
  for r in $(seq 1 "$rounds"); do
    for c in $cases; do
      case $c in
        floor) echo "interval=$interval round=$r floor:  $(floor "$interval")" ;;
        spread) echo "interval=$interval round=$r spread: $(floor "$interval" --spread)" ;;
        flv) echo "interval=$interval round=$r flv:    $(server "$interval" http)" ;;
        rtmp) echo "interval=$interval round=$r rtmp:   $(server "$interval" rtmp)" ;;
        before-flv) echo "interval=$interval round=$r before-flv:  $(server "$interval" http "$BEFORE")" ;;
        before-rtmp) echo "interval=$interval round=$r before-rtmp: $(server "$interval" rtmp "$BEFORE")" ;;
      esac
    done
  done
done
