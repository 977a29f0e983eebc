#!/usr/bin/env bash
# tus uploads against the floor of a durable write, side by side: for each round,
#   floor   upload-floor (blocking thread per connection, 1 MiB reads and writes, an
#           fdatasync every 8 MiB and at the end: the store's sync points),
#   server  media-server (the store's defaults),
#   before  another media-server build (BEFORE=path), if given,
# each fed by the same clients: tus-js-client (N concurrent uploads of S MiB, one PATCH
# each) and curl (C concurrent uploads of M MiB). Servers on core 0, clients on core 1,
# storage on the same disk. Prints each server's user and system CPU-seconds per GiB,
# aggregate MB/s and peak RSS; every stored file's sha256 is checked against the source.
#   usage: scripts/upload-floor.sh [rounds] [uploads] [size-mb] [curl-uploads] [curl-size-mb]
#   CASES="floor server" a subset; CLIENTS="js curl" a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
uploads="${2:-50}"
size="${3:-100}"
curls="${4:-10}"
curl_size="${5:-200}"
cases="${CASES:-floor server}"
clients="${CLIENTS:-js curl}"
[ -n "${BEFORE:-}" ] && cases="$cases before"
cargo build --release -q -p videopick-examples --bin media-server
cargo build --release -q -p videopick-benches --bin upload-floor
work=$(mktemp -d /var/tmp/upload-floor.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

head -c $(( curl_size << 20 )) /dev/urandom >"$work/curl.bin"
curl_sha=$(sha256sum "$work/curl.bin" | cut -d' ' -f1)

start() { # case -> sets srv (pid), endpoint, store (dir of uploaded files), files (glob)
  rm -rf "$work/store"
  case "$1" in
    floor)
      taskset -c 0 target/release/upload-floor --listen 127.0.0.1:18101 --dir "$work/store" \
        2>/dev/null &
      srv=$!; endpoint=http://127.0.0.1:18101/files/ ;;
    server | before)
      local bin=target/release/media-server
      [ "$1" = before ] && bin="$BEFORE"
      taskset -c 0 "$bin" --storage "$work/store" --min-free-bytes 0 --transcode-workers 0 \
        --rtmp 127.0.0.1:19352 --http 127.0.0.1:18101 >/dev/null 2>&1 &
      srv=$!; endpoint=http://127.0.0.1:18101/files/ ;;
  esac
  pids+=("$srv")
  until curl -s -o /dev/null -X OPTIONS "$endpoint"; do sleep 0.2; done
  sleep 0.5
}

stop() { kill "$srv"; wait "$srv" 2>/dev/null || true; }

# Every stored upload (a file of exactly the upload's size) must hash to $2.
check() { # size sha
  local n=0 bad=0 f
  while IFS= read -r f; do
    n=$((n + 1))
    [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$2" ] || bad=$((bad + 1))
  done < <(find "$work/store" -type f -size "$1"c)
  echo "$n stored, $bad bad"
}

cpu() { # pid -> "user_ticks sys_ticks"
  awk '{ sub(/.*\) /, ""); split($0, f, " "); print f[12], f[13] }' "/proc/$1/stat"
}

run_js() {
  local out
  out=$(taskset -c 1 node clients/js/tus-load.mjs --endpoint "$endpoint" --uploads "$uploads" \
    --size-mb "$size" --server-pid "$srv")
  local sha
  sha=$(echo "$out" | sed -E 's/.*"sha256":"([0-9a-f]+)".*/\1/')
  echo "$out" | sed -E 's/,"sha256".*//; s/.*"done":([0-9]+).*"mb_per_s":([0-9]+).*"user_s_per_gib":([0-9.]+),"sys_s_per_gib":([0-9.]+),"cpu_s_per_gib":([0-9.]+),"peak_rss_mib":([0-9.]+).*/done \1, \2 MB\/s, user \3 + sys \4 = \5 CPU-s\/GiB, peak RSS \6 MiB/' | tr -d '\n'
  echo ", $(check $(( size << 20 )) "$sha")"
}

run_curl() {
  local before after t0 t1 i urls=()
  for i in $(seq "$curls"); do
    urls+=("$(curl -si -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $(( curl_size << 20 ))" \
      "$endpoint" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')")
  done
  before=$(cpu "$srv"); t0=$(date +%s.%N)
  for u in "${urls[@]}"; do
    case "$u" in http*) ;; *) u="http://127.0.0.1:18101$u" ;; esac
    taskset -c 1 curl -sf -o /dev/null -X PATCH -H 'Tus-Resumable: 1.0.0' \
      -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
      -H 'Expect:' --data-binary @"$work/curl.bin" "$u" &
  done
  wait
  t1=$(date +%s.%N); after=$(cpu "$srv")
  awk -v b="$before" -v a="$after" -v t0="$t0" -v t1="$t1" -v n="$curls" -v s="$curl_size" 'BEGIN {
    split(b, x, " "); split(a, y, " "); gib = n * s / 1024
    u = (y[1] - x[1]) / 100 / gib; k = (y[2] - x[2]) / 100 / gib
    printf "%d MB/s, user %.3f + sys %.3f = %.3f CPU-s/GiB", n * s * 1048576 / 1e6 / (t1 - t0), u, k, u + k }'
  echo ", $(check $(( curl_size << 20 )) "$curl_sha")"
}

for r in $(seq "$rounds"); do
  for c in $cases; do
    for cl in $clients; do
      start "$c"
      sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
      if [ "$cl" = js ]; then
        printf 'round %s %-6s tus-js-client %s x %s MiB: %s\n' "$r" "$c" "$uploads" "$size" "$(run_js)"
      else
        head -c 1 "$work/curl.bin" >/dev/null
        cat "$work/curl.bin" >/dev/null
        printf 'round %s %-6s curl %s x %s MiB: %s\n' "$r" "$c" "$curls" "$curl_size" "$(run_curl)"
      fi
      stop
    done
  done
done
