#!/usr/bin/env bash
# What `make test` runs inside one local stack (local/scripts/stack.sh test): every cargo
# test (unit, property, end to end, benchmarks at smoke size), then a short deterministic
# schemathesis pass over openapi.yaml (fixed seed, every phase and check; `make fuzz` runs
# the long one). Both run even if the first fails, so one run reports everything.
#
# What failed is also written to ALOFT_FAILURE_SUMMARY (set by stack.sh), which stack.sh
# prints last, after the stack's log: a CI page that shows only the end of a run then
# still names the failing tests and their panics.
set -uo pipefail
cd "$(dirname "$0")/../.."
summary="${ALOFT_FAILURE_SUMMARY:-/dev/null}"
: >"$summary"
status=0
cargo_out="$(mktemp "${TMPDIR:-/tmp}/aloft-cargo-test.XXXXXX")"
trap 'rm -f "$cargo_out"' EXIT
cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee "$cargo_out"
cargo_status=${PIPESTATUS[0]}
if [ "$cargo_status" -ne 0 ]; then
  status=$cargo_status
  {
    echo "cargo test failed (exit $cargo_status):"
    local/scripts/test-failures.awk "$cargo_out"
  } >>"$summary"
fi
echo "checks: schemathesis, short deterministic pass (make fuzz runs the long one)"
local/scripts/fuzz.sh --seed 2026 --max-examples 5 --generation-database none || {
  status=$?
  echo "schemathesis failed (exit $status); its report is in target/fuzz" >>"$summary"
}
exit $status
