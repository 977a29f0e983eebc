#!/usr/bin/env bash
# CPU of low-latency HLS per live stream, side by side in the same minute: media-server with
# HLS off (A) and with LL-HLS (B) each take the same N streams at once, while ffmpeg remuxes
# N streams pulled from a third media-server (C, not measured) into fMP4 HLS. The LL cost
# is B − A within one window, so the machine's drift between runs does not enter it.
# Servers and remuxers on core 0, publishers on core 1 (the file looped); CPU from schedstat
# over 60 s, after `warm` seconds: from 35 s on, the LL window (30 s of media per stream) is
# full and its memory stops growing; `warm` 3 includes that growth.
#   usage: scripts/hls-cpu-side-by-side.sh [rounds] [streams] [warm]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
streams="${2:-8}"
warm="${3:-40}"
cargo build --release -q -p videopick-examples --bin media-server
# shellcheck source=scripts/hls-bench-common.sh
. scripts/hls-bench-common.sh
pids=()
work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
started=0
server() { # name rtmp-port http-port flags… → $started
  local name=$1 rtmp=$2 http=$3
  shift 3
  taskset -c 0 target/release/media-server --rtmp 127.0.0.1:"$rtmp" --http 127.0.0.1:"$http" \
    --storage "$work/$name" --transcode-workers 0 "$@" >"$work/$name.log" 2>&1 &
  started=$!
  pids+=($!)
}
printf 'round  HLS off (A)  LL-HLS (B)  B - A  ffmpeg fMP4 remux  remux / (B - A)   [ms CPU per minute per stream]\n'
for round in $(seq "$rounds"); do
  pids=()
  server off 19360 18060 --hls false; a=$started
  server ll 19361 18061 --hls true --hls-ts false; b=$started
  server src 19362 18062 --hls false
  sleep 1
  for i in $(seq "$streams"); do
    for port in 19360 19361 19362; do
      taskset -c 1 ffmpeg -hide_banner -loglevel quiet -re -stream_loop -1 -i "$input" -c copy -f flv \
        rtmp://127.0.0.1:$port/live/s$i &
      pids+=($!)
    done
  done
  sleep 2
  remux=()
  for i in $(seq "$streams"); do
    mkdir -p "$work/out$i"
    taskset -c 0 ffmpeg -hide_banner -loglevel quiet -i rtmp://127.0.0.1:19362/live/s$i -c copy \
      -f hls -hls_time 2 -hls_list_size 6 -hls_flags delete_segments -hls_segment_type fmp4 \
      "$work/out$i/x.m3u8" &
    remux+=($!)
    pids+=($!)
  done
  sleep "$warm"
  a0=$(cpu_ns "$a"); b0=$(cpu_ns "$b"); r0=$(cpu_ns "${remux[@]}")
  sleep 60
  a1=$(cpu_ns "$a"); b1=$(cpu_ns "$b"); r1=$(cpu_ns "${remux[@]}")
  per() { echo $(( ($2 - $1) / 1000000 / streams )); }
  A=$(per "$a0" "$a1"); B=$(per "$b0" "$b1"); R=$(per "$r0" "$r1")
  ratio=$(awk -v r="$R" -v d=$((B - A)) 'BEGIN { if (d > 0) printf "%.1fx", r / d; else print "-" }')
  printf '%5d  %11d  %10d  %5d  %17d  %15s\n' "$round" "$A" "$B" $((B - A)) "$R" "$ratio"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "${work:?}"/*
done
