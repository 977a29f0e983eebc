#!/usr/bin/env bash
# Chat deliveries under the real client against the kernel's floor, side by side: rounds of
#   floor   loopback-floor --message-bytes (one small write per client per message),
#   server  chat-server, read by socket.io-client (clients/js/sio-load.mjs),
#   before  another chat-server build (BEFORE=path), if given,
# N clients in one room, RATE messages a second into it. Servers on core 0, clients on
# core 1 (the floor is read by Node too, clients/js/flv-viewers.mjs). Prints CPU per
# delivery (per write for the floor), and the servers' RSS per connection, latency and
# losses.
#   usage: scripts/chat-floor.sh [clients] [rate] [rounds] [seconds] [transports]
#   CASES="floor server" a subset; WORKERS=n socket.io-client processes (default 2);
#   BURST=1 connects every client at once instead of 100 per 20 ms per worker.
#   CASES=rust: the same server read by chat-load, Rust clients doing socket.io-client's
#   handshake (polling, CONNECT posted, a poll held through the WebSocket probe, upgrade):
#   the latency a client that is not CPU-bound sees.
set -euo pipefail
cd "$(dirname "$0")/.."
clients="${1:-5000}"
rate="${2:-10}"
rounds="${3:-2}"
secs="${4:-10}"
transports="${5:-polling,websocket}"
cases="${CASES:-floor server}"
[ -n "${BEFORE:-}" ] && cases="$cases before"
cargo build --release -q -p videopick-examples --bin chat-server
cargo build --release -q -p videopick-benches --bin loopback-floor --bin chat-load
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
ulimit -n 20000
interval=$(( 1000 / rate ))

floor() {
  local out
  taskset -c 0 target/release/loopback-floor --listen 127.0.0.1:19401 --viewers "$clients" \
    --interval-ms "$interval" --message-bytes 150 --seconds "$secs" >"/tmp/chat-floor.$$" &
  local f=$!
  taskset -c 1 node clients/js/flv-viewers.mjs http://127.0.0.1:19401/x "$clients" \
    $(( secs + clients / 1000 + 6 )) >/dev/null 2>&1 &
  local l=$!
  wait "$f" || true
  kill "$l" 2>/dev/null || true; wait "$l" 2>/dev/null || true
  out=$(cat "/tmp/chat-floor.$$"); rm -f "/tmp/chat-floor.$$"
  echo "$out" | sed -E 's/.* ([0-9.]+) µs per write.*/\1 µs per write/'
}

server() { # binary
  taskset -c 0 "$1" --listen 127.0.0.1:3911 --jwt-secret s --rate 1000000 \
    --max-connections-per-ip 1000000 >/dev/null 2>&1 &
  local s=$!
  pids+=("$s")
  until curl -s -o /dev/null "http://127.0.0.1:3911/socket.io/?EIO=4&transport=polling"; do sleep 0.2; done
  taskset -c 1 node clients/js/sio-load.mjs --url http://127.0.0.1:3911 --secret s \
    --clients "$clients" --rate "$rate" --seconds "$secs" --workers "${WORKERS:-2}" \
    --transports "$transports" --server-pid "$s" ${BURST:+--burst 1} |
    node -e 'const o = JSON.parse(require("fs").readFileSync(0, "utf8"));
      console.log(`${o.cpu_us_per_delivery} µs per delivery, ${o.rss_per_connection_kib} KiB per connection (peak ${o.peak_rss_per_connection_kib}), p50 ${o.p50_ms} ms, p99 ${o.p99_ms} ms, max ${o.max_ms} ms, received ${o.received} of ${o.expected}, ${o.disconnected} disconnected ${o.disconnect_reasons.join(",")}`)'
  # What the server itself counted: slow-client drops, and how sessions ended (the
  # clients leaving at the end show as "server shutting down" and the sender's close).
  curl -s http://127.0.0.1:3911/metrics | awk '/^videopick_chat_drops/ { d += $NF }
    /^videopick_chat_disconnects/ { match($0, /reason="[^"]*"/); r = r " " substr($0, RSTART + 8, RLENGTH - 9) " " $NF }
    END { printf "  (server: %d dropped; ended:%s)\n", d, r }'
  kill "$s"; wait "$s" 2>/dev/null || true
}

rust() { # chat-server read by chat-load's Rust clients doing socket.io-client's handshake
  taskset -c 0 target/release/chat-server --listen 127.0.0.1:3911 --jwt-secret s \
    --rate 1000000 --max-connections-per-ip 1000000 >/dev/null 2>&1 &
  local s=$!
  pids+=("$s")
  until curl -s -o /dev/null "http://127.0.0.1:3911/socket.io/?EIO=4&transport=polling"; do sleep 0.2; done
  local handshake=--polling
  [ "$transports" = websocket ] && handshake=
  taskset -c 1 target/release/chat-load --url 127.0.0.1:3911 --secret s --clients "$clients" \
    --rate "$rate" --seconds "$secs" $handshake --concurrency "${BURST:+$clients}${BURST:-256}" \
    --server-pid "$s" 2>&1 | awk '
      /deliveries \(/ { got = $6 " of " $8 }
      /^delivery latency/ { p50 = $4 " ms"; p99 = $10 " ms"; max = $16 " ms" }
      /^server: / { cpu = $13 }
      END { printf "%s µs per delivery, p50 %s, p99 %s, max %s, received %s\n", cpu, p50, p99, max, got }'
  kill "$s"; wait "$s" 2>/dev/null || true
}

for r in $(seq "$rounds"); do
  for c in $cases; do
    case "$c" in
      floor) printf 'round %s floor:  %s\n' "$r" "$(floor)" ;;
      server) printf 'round %s server: %s\n' "$r" "$(server target/release/chat-server)" ;;
      before) printf 'round %s before: %s\n' "$r" "$(server "$BEFORE")" ;;
      rust) printf 'round %s rust:   %s\n' "$r" "$(rust)" ;;
    esac
  done
done
