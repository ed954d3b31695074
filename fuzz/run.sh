#!/usr/bin/env bash
# Runs tollgate's fuzz targets, one after another, each for a bounded time.
#   fuzz/run.sh [seconds-per-target] [target...]
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`). Targets run
# without a sanitizer: tollgate forbids `unsafe`, so the fuzzer hunts panics,
# assertion failures (each target states what must hold), hangs and
# runaway memory. A crash leaves its input in fuzz/artifacts/<target>/;
# turn it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(session_cookie redirect_target path_normalize request_target config_toml jwt forwarded_headers)
fi
cargo +nightly fuzz build -s none -O
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${seconds}s"
  if ! cargo +nightly fuzz run -s none -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
      -print_final_stats=1 2>"artifacts/$t/log.txt"; then
    echo "   CRASH: see fuzz/artifacts/$t/" >&2
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done" "artifacts/$t/log.txt" | sed 's/^/   /' || true
done
exit $status
