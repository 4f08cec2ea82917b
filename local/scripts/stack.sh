#!/usr/bin/env bash
# Runs the whole platform on this machine: moto's server as the AWS endpoint, and
# aloft-local (API Gateway + Lambda over the real function binaries) in front.
#
#   stack.sh run          serve on ALOFT_PORT (default 3000) until Ctrl-C
#   stack.sh test CMD...  start on free ports, run CMD with the stack's env, stop
#
# Everything it starts is stopped when it exits, however it exits.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
mode="${1:-run}"; shift || true
venv="$root/.venv"
state="$root/.aloft"
mkdir -p "$state"

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # url, what, pid, log
  local url="$1" what="$2" pid="$3" log="$4"
  for _ in $(seq 1 600); do
    if "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "stack: $what exited during start-up; its log ($log):" >&2; tail -n 40 "$log" >&2; exit 1
    fi
    sleep 0.1
  done
  echo "stack: $what did not answer at $url within 60 s; its log ($log):" >&2; tail -n 40 "$log" >&2; exit 1
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Credentials moto accepts; never real ones, so a local run can't touch an account.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
unset AWS_PROFILE

if [ "$mode" = test ]; then
  port="$(free_port)"
  ttl=2 # short authorizer cache so revocation is observable in a test
  schedules=manual # tests fire schedules themselves, so runs are deterministic
  # Several test stacks may run at once (one per terminal): each keeps its own logs.
  logs="$(mktemp -d "$state/test-run.XXXXXX")"
else
  port="${ALOFT_PORT:-3000}"
  ttl=""
  schedules=auto
  logs="$state"
fi
moto_port="$(free_port)"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"

echo "stack: building functions..."
cargo build --quiet --workspace --bins

# moto's own server, with DynamoDB requests serialised (see local/moto_server.py).
"$venv/bin/python" local/moto_server.py 127.0.0.1 "$moto_port" >"$logs/moto.log" 2>&1 &
pids+=($!)
wait_for "$AWS_ENDPOINT_URL/moto-api/" "moto" "${pids[-1]}" "$logs/moto.log"

# Local webhook receivers listen on loopback (plain http), which the deployed default
# refuses; link-local and metadata addresses stay refused.
params=("WebhookAllowPrivateUrls=true")
# The tests' health-check servers listen on loopback; private ranges stay refused, as
# deployed by default (deployers inside a VPC may allow them).
params+=("RegistryHealthChecksAllow=loopback")
# One machine: at most 10 processes per function, as aloft-local's default, rather than
# the deployed reservations (50–100 per function).
params+=("AuthorizerConcurrency=10" "ApiFunctionConcurrency=10" "WorkerFunctionConcurrency=10")
# moto answers in milliseconds, but on a loaded two-core machine a call can queue for
# seconds behind serialised DynamoDB requests: a local call may take up to 30 s before
# it counts as failed (4 s deployed). Tests that build their own clients read it too.
export AWS_CALL_TIMEOUT_MS=30000
params+=("AwsCallTimeoutMs=$AWS_CALL_TIMEOUT_MS")
if [ "$mode" = test ]; then
  # A small bucket for GET /health only, so the gateway's 429 is observable; every other
  # route keeps the stage default.
  params+=("HealthThrottleBurstLimit=5" "HealthThrottleRateLimit=1")
  params+=("AuthorizerCacheTtlSeconds=$ttl")
  # The Standard Webhooks schedule (0 s, 5 s, 5 min, …) in seconds rather than hours:
  # the same retry code path, observable within a test.
  params+=("WebhookRetrySchedule=0,1,2,3")
  # A subscription failing for 20 s (not 5 days) is disabled when a test fires the sweep.
  params+=("WebhookDisableAfterSeconds=20")
fi
overrides=()
[ ${#params[@]} -gt 0 ] && overrides=(--parameter-overrides "${params[@]}")
local_log="$logs/local.log"
if [ "$mode" = test ]; then
  target/debug/aloft-local --template template.yaml --bin-dir target/debug --port "$port" \
    --endpoint "$AWS_ENDPOINT_URL" --schedules "$schedules" "${overrides[@]}" >"$local_log" 2>&1 &
else
  # Interactive: show function logs as they happen, and keep a copy.
  target/debug/aloft-local --template template.yaml --bin-dir target/debug --port "$port" \
    --endpoint "$AWS_ENDPOINT_URL" --schedules "$schedules" "${overrides[@]}" > >(tee "$local_log") 2>&1 &
fi
pids+=($!)
wait_for "http://127.0.0.1:$port/_local/ready" "aloft-local" "${pids[-1]}" "$local_log"

key_file="$state/admin-key"
[ "$mode" = test ] && key_file="$state/test-admin-key"
admin_key="$(target/debug/create-admin-key --table ApiKeysTable --name "local-admin" --out "$key_file" | tail -n 1)"
export ALOFT_URL="http://127.0.0.1:$port" ALOFT_ADMIN_KEY="$admin_key"

if [ "$mode" = test ]; then
  export ALOFT_AUTHORIZER_TTL_SECONDS=2
  export ALOFT_LOCAL_LOG="$local_log" # tests read the functions' logs (e.g. for leaked card numbers)
  # The command may say what failed here; it is printed last, below the stack's log.
  export ALOFT_FAILURE_SUMMARY="$logs/failures.txt"
  set +e
  "$@"
  status=$?
  set -e
  if [ $status -ne 0 ]; then
    echo "stack: tests failed; last lines of the local stack's log ($local_log):" >&2
    tail -n 60 "$local_log" >&2
    if [ -s "$ALOFT_FAILURE_SUMMARY" ]; then
      echo "stack: what failed ($ALOFT_FAILURE_SUMMARY):" >&2
      cat "$ALOFT_FAILURE_SUMMARY" >&2
    fi
  fi
  exit $status
fi

cat <<INFO

aloft is running at $ALOFT_URL  (AWS endpoint: $AWS_ENDPOINT_URL)
Admin API key (also in .aloft/admin-key):

  $admin_key

Create a user:

  curl -sS -X POST $ALOFT_URL/users \\
    -H "Authorization: Bearer \$(cat .aloft/admin-key)" \\
    -H 'Content-Type: application/json' \\
    -d '{"email": "ada@example.com", "name": "Ada Lovelace", "role": "admin"}'

Press Ctrl-C to stop everything.
INFO
wait "${pids[-1]}"
