# Shared by the HLS benchmark scripts (sourced): the test stream and CPU accounting.

# A 75 s 2.4 Mbit/s 720p25 H.264 (2 s GOP) + AAC FLV, made once: every HLS benchmark
# publishes the same bytes.
input=/tmp/videopick-hls-bench.flv
[ -f "$input" ] || ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 75 -pix_fmt yuv420p -c:v libx264 \
  -preset veryfast -b:v 2400k -maxrate 2400k -bufsize 4800k -g 50 -c:a aac -b:a 128k "$input"

# CPU time (ns) of all threads of the given processes, from schedstat.
cpu_ns() {
  local total=0 pid
  for pid in "$@"; do
    total=$(( total + $(cat /proc/"$pid"/task/*/schedstat | awk '{s+=$1} END {printf "%d", s}') ))
  done
  echo "$total"
}
