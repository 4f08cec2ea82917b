#!/usr/bin/env bash
# schemathesis against a running local stack (ALOFT_URL, ALOFT_ADMIN_KEY), every phase
# (examples, coverage, fuzzing, stateful) and every check but the one
# local/fuzz/schemathesis.toml disables. Run by `make fuzz` (a long run) and by `make test`
# (a short one with a fixed seed); arguments pass through to `st run`. One worker: the
# order of cases is then the seed's alone, and hypothesis's source inspection is not
# thread-safe (a second worker has failed it with "AST constructor recursion depth").
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${ALOFT_URL:?run through local/scripts/stack.sh}" "${ALOFT_ADMIN_KEY:?}"
reports="${FUZZ_REPORTS:-target/fuzz}"
mkdir -p "$reports"
exec .venv/bin/st --config-file local/fuzz/schemathesis.toml run openapi.yaml \
  --url "$ALOFT_URL" \
  -H "Authorization: Bearer $ALOFT_ADMIN_KEY" \
  --workers 1 \
  --report junit --report-dir "$reports" \
  --no-color "$@"
