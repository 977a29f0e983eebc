#!/usr/bin/env bash
# schemathesis (PyPI) against the app API's own OpenAPI document, served by a real
# app-server: no 5xx, every status, content type and body as the document says.
#   scripts/schemathesis.sh [path/to/app-server] [seconds]
set -euo pipefail
bin=${1:-target/debug/app-server}
secs=${2:-60}
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
"$bin" --listen "127.0.0.1:$port" --data "$work/data" --chat-secret schemathesis >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
# A signed-in admin with a channel, so authenticated operations reach their logic.
token=$(curl -sf -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"username":"schemathesis","email":"st@example.com","password":"correct horse battery"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -sf -X POST "$base/api/v1/channels" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"slug":"st-channel","name":"ST"}' >/dev/null
# Signing out would end the run's own session: those two are covered by the Rust suite.
python3 -m schemathesis.cli run "$base/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path-regex '/auth/signout' \
  --max-time "$secs" --workers 2 --no-color
if grep -q "panicked" "$work/server.log"; then
  echo "app-server panicked:" >&2
  grep -A5 panicked "$work/server.log" >&2
  exit 1
fi
