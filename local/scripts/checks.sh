#!/usr/bin/env bash
# What `make test` runs inside one local stack (local/scripts/stack.sh test): every cargo
# test (unit, property, end to end, benchmarks at smoke size), then a short deterministic
# schemathesis pass over openapi.yaml (fixed seed, every phase and check; `make fuzz` runs
# the long one). Both run even if the first fails, so one run reports everything.
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0
cargo test --workspace --all-targets --no-fail-fast || status=$?
echo "checks: schemathesis, short deterministic pass (make fuzz runs the long one)"
local/scripts/fuzz.sh --seed 2026 --max-examples 5 --generation-database none || status=$?
exit $status
