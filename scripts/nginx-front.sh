#!/usr/bin/env bash
# What Nginx in front costs for live HTTP-FLV, as deployed: the app server's site rendered
# from the Ansible inventory (deploy/render.py; TLS, unbuffered proxy to the media server).
# For N viewers of one stream, rounds of
#   direct  the viewers on the media server's own port (plain HTTP),
#   nginx   the same viewers through Nginx over TLS (one worker),
#   plain   through the same site's TLS server block served without TLS (port 18444): what
#           of Nginx's cost is the proxying and what the TLS,
# all read by Node (clients/js/flv-viewers.mjs; https for the second). media-server and
# the Nginx worker on core 0, the publisher (live-load) and the viewers on core 1. Prints
# CPU per viewer-second of the media server and of the Nginx worker, and what was delivered.
#   usage: scripts/nginx-front.sh [viewers] [rounds] [seconds] [kbps] [write interval, ms]
set -euo pipefail
cd "$(dirname "$0")/.."
viewers="${1:-300}"
rounds="${2:-2}"
secs="${3:-12}"
kbps="${4:-2500}"
interval="${5:-20}"
cargo build --release -q -p videopick-examples --bin media-server
cargo build --release -q -p videopick-benches --bin live-load
work=$(mktemp -d)
# Every process started is listed in $work/pids (run() runs in a subshell: an array would
# not reach the trap).
cleanup() {
  [ -f "$work/pids" ] && kill $(cat "$work/pids") 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 20000

# The site as Ansible installs it on the app server, with test ports, paths and certificate.
python3 - "$work" <<'EOF'
import pathlib, subprocess, sys
sys.path.insert(0, "deploy")
import render
w = pathlib.Path(sys.argv[1])
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=videopick.example", "-keyout", str(w / "key.pem"),
                "-out", str(w / "cert.pem")], check=True, capture_output=True)
secrets = {f"vault_{k}": "bench" for k in ("postgres_password", "redis_password",
           "chat_jwt_secret", "hook_secret", "media_api_token")}
render.render("app", w / "root", {
    **secrets, "media_upstream": "127.0.0.1:18000", "nginx_http_port": 18080,
    "nginx_https_port": 18443, "tls_certificate": str(w / "cert.pem"),
    "tls_certificate_key": str(w / "key.pem"), "nginx_cache_dir": str(w / "cache")})
# The TLS server block again, without TLS, on another port (to split proxying from TLS).
site = (w / "root/etc/nginx/conf.d/videopick.conf").read_text()
at = site.rindex("server {", 0, site.index("listen 18443"))
depth, i = 0, site.index("{", at)
while True:
    depth += {"{": 1, "}": -1}.get(site[i], 0)
    if depth == 0:
        break
    i += 1
block = [l for l in site[at:i + 1].splitlines()
         if "[::]" not in l and not l.strip().startswith(("ssl_", "add_header Strict"))]
(w / "plain.conf").write_text("\n".join(block).replace("listen 18443 ssl http2;", "listen 18444;") + "\n")
temps = "\n".join(f"    {k}_temp_path {w / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
(w / "nginx.conf").write_text(
    f"user root;\npid {w / 'nginx.pid'};\nerror_log {w / 'error.log'} warn;\nworker_processes 1;\n"
    f"worker_rlimit_nofile 20000;\nevents {{ worker_connections 10000; }}\n"
    f"http {{\n    access_log off;\n{temps}\n    include {w / 'root/etc/nginx/conf.d/videopick.conf'};\n    include {w / 'plain.conf'};\n}}\n")
EOF
taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off;' &
echo $! >>"$work/pids"
worker=""
for _ in $(seq 1 100); do
  [ -s "$work/nginx.pid" ] && worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1 || true)
  [ -n "$worker" ] && break
  sleep 0.1
done
[ -n "$worker" ] || { echo "nginx did not start: $(cat "$work/error.log" 2>/dev/null)" >&2; exit 1; }

run() { # case
  rm -rf "$work/data"
  taskset -c 0 target/release/media-server --rtmp 127.0.0.1:19350 --http 127.0.0.1:18000 \
    --storage "$work/data" --transcode-workers 0 --hls false --write-interval-ms "$interval" \
    >/dev/null 2>&1 &
  local s=$!
  echo "$s" >>"$work/pids"
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null http://127.0.0.1:18000/api/streams && break
    sleep 0.2
  done
  taskset -c 1 target/release/live-load --rtmp 127.0.0.1:19350 --publish --viewers 0 \
    --bitrate-kbps "$kbps" --seconds $(( secs + viewers / 100 + 8 )) >/dev/null 2>&1 &
  local p=$!
  echo "$p" >>"$work/pids"
  sleep 1
  if [ "$1" = direct ]; then
    taskset -c 1 node clients/js/flv-viewers.mjs http://127.0.0.1:18000/live/load.flv "$viewers" \
      "$secs" "$s" >"$work/load.out" 2>&1 || true
  elif [ "$1" = plain ]; then
    taskset -c 1 node clients/js/flv-viewers.mjs http://127.0.0.1:18444/live/load.flv "$viewers" \
      "$secs" "$s,$worker" >"$work/load.out" 2>&1 || true
  else
    taskset -c 1 node clients/js/flv-viewers.mjs https://127.0.0.1:18443/live/load.flv "$viewers" \
      "$secs" "$s,$worker" >"$work/load.out" 2>&1 || true
  fi
  kill "$p" "$s" 2>/dev/null || true
  wait "$p" "$s" 2>/dev/null || true
  local media nginx delivered
  media=$(sed -nE "s/^summary\[$s\]: ([0-9.]+) ms.*/\1/p" "$work/load.out")
  nginx=$(sed -nE "s/^summary\[$worker\]: ([0-9.]+) ms.*/\1/p" "$work/load.out")
  delivered=$(sed -nE 's/^delivered: (.*)/\1/p' "$work/load.out")
  echo "media-server ${media:-?} ms, nginx worker ${nginx:--} ms per viewer-second; delivered $delivered"
}

for r in $(seq 1 "$rounds"); do
  echo "round=$r direct: $(run direct)"
  echo "round=$r plain:  $(run plain)"
  echo "round=$r nginx:  $(run nginx)"
done
