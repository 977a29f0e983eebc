#!/usr/bin/env bash
# Low-latency HLS fan-out: N viewers behaving like hls.js in low-latency mode (blocking
# playlist reloads, then the part) on one 2.4 Mbit/s stream from media-server, side by side
# with nginx (Debian package, one worker) serving the same playlist and parts from tmpfs,
# polled once per part duration (the same request rate) by the same number of viewers.
# Servers on core 0; publisher, mirror and load tool on core 1. Prints each server's CPU per
# viewer-second.
#   usage: scripts/hls-fanout.sh [viewers] [seconds]
#   MEDIA_SERVER=path/to/media-server measures another build (before/after a change).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers="${1:-1000}"
secs="${2:-30}"
command -v nginx >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null
}
cargo build --release -q -p videopick-examples --bin media-server
cargo build --release -q -p videopick-benches --bin hls-load
# shellcheck source=scripts/hls-bench-common.sh
. scripts/hls-bench-common.sh
work=$(mktemp -d)
shm=$(mktemp -d -p /dev/shm vp-ll.XXXX)
chmod 755 "$shm" # the nginx worker runs as www-data
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work" "$shm"; }
trap cleanup EXIT
ulimit -n 20000

taskset -c 0 "${MEDIA_SERVER:-target/release/media-server}" --rtmp 127.0.0.1:19350 --http 127.0.0.1:18000 \
  --storage "$work/data" --transcode-workers 0 --hls-ts false >/dev/null 2>&1 &
server=$!; pids+=("$server")
sleep 1
taskset -c 1 ffmpeg -hide_banner -loglevel quiet -re -stream_loop -1 -i "$input" -c copy -f flv \
  rtmp://127.0.0.1:19350/live/load &
pids+=($!)
until curl -sf -o /dev/null http://127.0.0.1:18000/live/load.m3u8; do sleep 0.2; done

echo "== media-server: $viewers viewers with blocking reloads"
taskset -c 1 target/release/hls-load --http 127.0.0.1:18000 --playlist /live/load.m3u8 \
  --viewers "$viewers" --seconds "$secs" --server-pid "$server" | tail -n 4

# The pollers reload once per mean part duration: the request rate of the blocking reloads.
poll_ms=$(curl -sf http://127.0.0.1:18000/live/load.m3u8 | awk -F'[=,]' \
  '/^#EXT-X-PART:/ { sum += $2; n++ } END { printf "%d", (n ? sum / n * 1000 : 333) }')
echo "== nginx (1 worker, files on tmpfs): $viewers viewers polling every $poll_ms ms"
taskset -c 1 target/release/hls-load --http 127.0.0.1:18000 --playlist /live/load.m3u8 \
  --mirror "$shm" &
pids+=($!)
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
error_log $work/nginx-error.log;
pid $work/nginx.pid;
worker_rlimit_nofile 20000;
events { worker_connections 8000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  open_file_cache max=1000 inactive=10s;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server {
    listen 127.0.0.1:18080;
    root $shm;
    # The playlist is replaced (renamed over) every part: no descriptor cache for it.
    location ~ \.m3u8\$ { open_file_cache off; add_header Cache-Control no-cache; }
    location / { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
CONF
until [ -f "$shm/load.m3u8" ]; do sleep 0.2; done
taskset -c 0 nginx -c "$work/nginx.conf" -g 'daemon off;' &
pids+=($!)
sleep 1
worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -n1)
taskset -c 1 target/release/hls-load --http 127.0.0.1:18080 --playlist /load.m3u8 \
  --viewers "$viewers" --seconds "$secs" --poll-ms "$poll_ms" --server-pid "$worker" | tail -n 4
