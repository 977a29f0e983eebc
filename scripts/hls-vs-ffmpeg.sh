#!/usr/bin/env bash
# CPU cost of live HLS per 2.5 Mbit/s stream: media-server with low-latency HLS (CMAF parts)
# only, with LL-HLS + the TS variant (the default), with TS only, with HLS off, and
# `ffmpeg -c copy -f hls` pulling each stream (TS, what Node Media Server v2 runs per stream,
# and fMP4). Server and remuxers on core 0, the publishers on core 1; CPU is summed over all
# threads from /proc/<pid>/task/*/schedstat over 60 s. Several streams at once make the
# per-stream cost stand out of the noise; modes are interleaved round by round.
#   usage: scripts/hls-vs-ffmpeg.sh [rounds] [streams] [modes…]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-2}"
streams="${2:-1}"
shift 2 || true
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(media-server-ll media-server-ll+ts media-server-ts media-server-no-hls
  ffmpeg-remux ffmpeg-remux-fmp4)
cargo build --release -q -p videopick-examples --bin media-server
# shellcheck source=scripts/hls-bench-common.sh
. scripts/hls-bench-common.sh
run() {
  local mode=$1 flags data out i
  case "$mode" in
    media-server-ll) flags=(--hls true --hls-ts false) ;;
    media-server-ll+ts) flags=(--hls true) ;;
    media-server-ts) flags=(--hls true --hls-part-ms 0) ;;
    *) flags=(--hls false) ;;
  esac
  data=$(mktemp -d); out=$(mktemp -d)
  taskset -c 0 target/release/media-server --rtmp 127.0.0.1:19350 --http 127.0.0.1:18000 \
    --storage "$data" --transcode-workers 0 "${flags[@]}" >/dev/null 2>&1 &
  local server=$! pids=()
  sleep 1
  for i in $(seq "$streams"); do
    taskset -c 1 ffmpeg -hide_banner -loglevel quiet -re -i "$input" -c copy -f flv \
      rtmp://127.0.0.1:19350/live/b$i &
    pids+=($!)
  done
  sleep 2
  local targets=("$server")
  if [ "${mode#ffmpeg-remux}" != "$mode" ]; then
    local kind=mpegts
    [ "$mode" = ffmpeg-remux-fmp4 ] && kind=fmp4
    targets=()
    for i in $(seq "$streams"); do
      mkdir -p "$out/$i"
      taskset -c 0 ffmpeg -hide_banner -loglevel quiet -i rtmp://127.0.0.1:19350/live/b$i -c copy \
        -f hls -hls_time 2 -hls_list_size 6 -hls_flags delete_segments -hls_segment_type "$kind" \
        "$out/$i/x.m3u8" &
      targets+=($!)
      pids+=($!)
    done
  fi
  sleep 3
  local a b
  a=$(cpu_ns "${targets[@]}"); sleep 60; b=$(cpu_ns "${targets[@]}")
  echo "$mode: $(( (b - a) / 1000000 / streams )) ms CPU per minute per stream ($streams streams)"
  kill "${pids[@]}" "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$data" "$out"
}
for _ in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do run "$mode"; done
done
