#!/usr/bin/env bash
# 100,000 chat connections in one room across several chat-server processes sharing one
# port (SO_REUSEPORT) and one Redis (the room spans the processes over the Redis bus).
# One process may hold at most ~20,000 open files here, so the clients come from several
# chat-load processes, each from its own 127.0.0.x source address (~28,000 ports each).
# Prints the servers' memory per connection, then what the watchers saw of one sender's
# messages (every client should get each of them once).
#
#   scripts/chat-100k.sh                 # 6 servers, 6 load processes, 100,000 clients
#   NODES=5 CLIENTS=60000 RATE=5 scripts/chat-100k.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-6}
LOADERS=${LOADERS:-6}
CLIENTS=${CLIENTS:-100000}
PORT=${PORT:-3950}
RATE=${RATE:-2}
SEND_SECS=${SEND_SECS:-10}
REDIS=${REDIS:-redis://127.0.0.1:6379}
PREFIX="bench100k:$$"

cargo build --release -q -p videopick-examples --bin chat-server -p videopick-benches --bin chat-load
BIN=target/release
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

rss_sum() { # KiB over the server processes
  local t=0
  for p in "${SERVERS[@]}"; do
    t=$((t + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
  done
  echo "$t"
}

SERVERS=()
for i in $(seq 1 "$NODES"); do
  "$BIN/chat-server" --listen "127.0.0.1:$PORT" --reuse-port --redis "$REDIS" \
    --redis-prefix "$PREFIX" --node-id "n$i" --jwt-secret s --rate 1000000 \
    --max-connections-per-ip 1000000 >/tmp/chat-100k-server-$i.log 2>&1 &
  SERVERS+=($!)
  PIDS+=($!)
done
sleep 1
RSS0=$(rss_sum)
echo "$NODES chat-server processes on 127.0.0.1:$PORT (SO_REUSEPORT, Redis bus): $((RSS0 / 1024)) MiB RSS before clients"

PER=$((CLIENTS / LOADERS))
WATCHERS=()
for i in $(seq 2 "$LOADERS"); do
  "$BIN/chat-load" --url "127.0.0.1:$PORT" --sources "127.0.0.$i" --secret s \
    --clients "$PER" --tag l1 --seconds 600 >/tmp/chat-100k-load-$i.log 2>&1 &
  WATCHERS+=($!)
  PIDS+=($!)
done
# The watchers join first; then the sender's process joins its share and posts.
for i in $(seq 2 "$LOADERS"); do
  until grep -q "clients joined" /tmp/chat-100k-load-$i.log; do sleep 1; done
done
"$BIN/chat-load" --url "127.0.0.1:$PORT" --sources 127.0.0.1 --secret s --clients "$PER" \
  --tag l1 --rate "$RATE" --seconds "$SEND_SECS" >/tmp/chat-100k-load-1.log 2>&1 &
SENDER=$!
PIDS+=($SENDER)
until grep -q "clients joined" /tmp/chat-100k-load-1.log; do sleep 1; done
sleep 2
RSS1=$(rss_sum)
CONNS=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
echo "$CONNS connections established: $((RSS1 / 1024)) MiB RSS over $NODES servers, $(( (RSS1 - RSS0) * 100 / CONNS / 100 )).$(( (RSS1 - RSS0) * 100 / CONNS % 100 )) KiB per connection"
wait "$SENDER"
for w in "${WATCHERS[@]}"; do wait "$w" || true; done
for i in $(seq 1 "$LOADERS"); do
  echo "--- load process $i (127.0.0.$i)"
  grep -E "joined|messages to|latency" /tmp/chat-100k-load-$i.log
done
