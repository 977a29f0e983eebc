#!/usr/bin/env bash
# The project's single test command (README "Run the tests", called by .ci/run).
# On a fresh machine of this kind it installs what the tests need, makes sure PostgreSQL and
# Redis are up, then runs format, lint, tests and docs with warnings denied.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- tools -------------------------------------------------------------------------------
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  say "installing ffmpeg (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
# JS test clients (tus-js-client; socket.io-client later), pinned by clients/js's lockfile.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "installing Node.js (Debian packages)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# Python test clients (tuspy, schemathesis), pinned by clients/python/requirements.txt.
if ! python3 -m pip --version >/dev/null 2>&1; then
  say "installing pip (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
fi
say "pip install -r clients/python/requirements.txt -r deploy/requirements.txt"
python3 -m pip install --quiet --disable-pip-version-check -r clients/python/requirements.txt \
  -r deploy/requirements.txt 2>&1 | grep -v "Running pip as the 'root' user" || true
# Deployment checks: systemd-analyze verifies the units deploy/ansible installs, nginx -t
# its Nginx site, nft -c its firewall rules (in a network namespace: iproute2), promtool
# its Prometheus configuration and alert rules; the topology test runs Prometheus and the
# exporters the roles install.
for tool in systemd-analyze:systemd nginx:nginx-light nft:nftables ip:iproute2 openssl:openssl \
  promtool:prometheus prometheus-node-exporter:prometheus-node-exporter \
  prometheus-postgres-exporter:prometheus-postgres-exporter \
  prometheus-redis-exporter:prometheus-redis-exporter; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    say "installing ${tool%%:*} (Debian package ${tool#*:})"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
  fi
done
for js in clients/js; do
  if [ -f "$js/package.json" ]; then
    say "npm ci in $js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# Browser tests: Debian's Chromium (driven by playwright-core from web/'s lockfile, never a
# browser download), and CJK fonts so Korean pages render in screenshots.
if ! command -v chromium >/dev/null 2>&1; then
  say "installing Chromium (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
fi
say "web app: npm ci and build when missing or stale"
./scripts/web-build.sh

# --- services ----------------------------------------------------------------------------
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 50); do
  pg_isready -h 127.0.0.1 -p 5432 -q && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

# --- checks ------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all --check

say "cargo clippy (workspace, all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings


say "cargo test (workspace, all features)"
cargo test --workspace --all-features

say "deployment checks (deploy/tests: what Ansible installs, backups, and the plan's servers run in network namespaces)"
VIDEOPICK_BIN_DIR="$(realpath "${CARGO_TARGET_DIR:-target}")/debug" python3 -m pytest -q -p no:cacheprovider deploy/tests

say "web app unit tests (Vitest)"
(cd web && npm test --silent)

say "browser tests (Chromium + playwright-core against a fresh videopick)"
node web/e2e/run.mjs "${CARGO_TARGET_DIR:-target}/debug/videopick"

say "low-latency HLS in hls.js (Chromium): 30 s with no stall, under 3 s behind the wall clock"
media_server="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/media-server"
(cd web && node e2e/ll-latency.mjs "$media_server" --parts 333 --secs 30 --max 3)

say "schemathesis against the app API's OpenAPI document (${SCHEMATHESIS_SECONDS:-60}s)"
./scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/app-server" "${SCHEMATHESIS_SECONDS:-60}"

say "fuzz smoke (every target, ${FUZZ_SECONDS:-5}s each)"
./scripts/fuzz-smoke.sh

say "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet

say "all checks passed"
