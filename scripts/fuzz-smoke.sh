#!/usr/bin/env bash
# Run every fuzz target briefly (default 5 s each) from its committed seeds: a smoke test
# for CI. Long runs: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/seeds/<target> -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECONDS:-5}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build >/dev/null 2>&1 || cargo fuzz build
for t in $targets; do
  corpus=$(mktemp -d)
  echo "fuzz $t for ${secs}s"
  cargo fuzz run "$t" "$corpus" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 >"$corpus.log" 2>&1 || {
    echo "fuzz target $t failed:"; tail -n 40 "$corpus.log"; exit 1; }
  rm -rf "$corpus" "$corpus.log"
done
echo "fuzz smoke: all targets ran ${secs}s without a crash"
