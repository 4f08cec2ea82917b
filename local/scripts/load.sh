#!/usr/bin/env bash
# `make load`: drives the local stack with oha at 50 concurrent connections for 30 s over
# a mix of operations, against loopback only, and prints throughput and p50/p99 per
# operation. Any status other than the operation's success (or a 429 from the gateway's
# throttle) fails the run.
#
#   load.sh            install oha (pinned, once), start a test stack, run the mix
#   load.sh --inside   run the mix against $ALOFT_URL (what stack.sh test calls)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
DURATION="${LOAD_DURATION:-30s}"

if [ "${1:-}" != --inside ]; then
  oha="$(local/scripts/tools.sh oha)"
  export OHA="$oha"
  exec local/scripts/stack.sh test "$0" --inside
fi

case "$ALOFT_URL" in
  http://127.0.0.1:*|http://localhost:*) ;;
  *) echo "load: refusing to load $ALOFT_URL: loopback only" >&2; exit 1 ;;
esac
work="$(mktemp -d "$root/.aloft/load.XXXXXX")"
auth="Authorization: Bearer $ALOFT_ADMIN_KEY"
json="Content-Type: application/json"
call() { # method path [body] -> body on stdout; fails on a non-2xx
  curl -sS --fail-with-body -X "$1" "$ALOFT_URL$2" -H "$auth" -H "$json" ${3:+-d "$3"}
}
field() { "$root/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# What the reads need: a user, and a service with three instances on long leases.
run_id="$(date +%s)$$"
user_id="$(call POST /users "{\"email\":\"load-$run_id@example.com\",\"name\":\"Load\",\"role\":\"viewer\"}" | field id)"
service="load-$run_id"
for i in 1 2 3; do
  call POST "/services/$service/instances" \
    "{\"instance_id\":\"i$i\",\"address\":\"127.0.0.1\",\"port\":$((8000 + i)),\"ttl_seconds\":600}" >/dev/null
done

# oha picks -Z lines at random (with replacement), so two creates can draw the same
# email (a correct 409). Creates are capped at 10/s over a million distinct bodies,
# which makes a repeat unlikely (~5%); the summary names any 409 as such.
"$root/.venv/bin/python" - "$work/users.jsonl" "$run_id" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1_000_000):
        f.write('{"email":"load-%s-%d@example.com","name":"Load %d","role":"viewer"}\n' % (sys.argv[2], i, i))
PY
payment="{\"user_id\":\"$user_id\",\"amount\":1999,\"currency\":\"EUR\",\"method\":{\"type\":\"card\",\"card\":{\"number\":\"4242424242424242\",\"exp_month\":12,\"exp_year\":2035,\"cvc\":\"123\"}}}"

# name | connections | extra oha arguments (method, body, URL); 50 connections in all.
ops=(
  "create_user|4|-m POST -q 10 -Z $work/users.jsonl $ALOFT_URL/users"
  "read_user|10|$ALOFT_URL/users/$user_id"
  "search|8|$ALOFT_URL/users?role=viewer&limit=10"
  "heartbeat|8|-m PUT -d {} $ALOFT_URL/services/$service/instances/i1/heartbeat"
  "discover|8|$ALOFT_URL/services/$service/instances"
  "resolve|6|$ALOFT_URL/services/$service/resolve"
  "payment|6|-m POST -H Idempotency-Key:load-$run_id -d $payment $ALOFT_URL/payments"
)
echo "load: ${#ops[@]} operations, 50 connections, $DURATION, against $ALOFT_URL"
pids=()
set -f # URLs hold `?`: no globbing when the arguments are split
for op in "${ops[@]}"; do
  IFS='|' read -r name conns args <<<"$op"
  # shellcheck disable=SC2086 # the arguments are split on purpose
  "$OHA" --no-tui --output-format json -z "$DURATION" -c "$conns" \
    -H "$auth" -H "$json" $args >"$work/$name.json" 2>"$work/$name.err" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ $status -eq 0 ] || { echo "load: oha failed:" >&2; cat "$work"/*.err >&2; exit 1; }

"$root/.venv/bin/python" - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
ok = {"create_user": {"201"}, "read_user": {"200"}, "search": {"200"}, "heartbeat": {"200"},
      "discover": {"200"}, "resolve": {"200"}, "payment": {"200", "201"}}
print(f"{'operation':<12} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
total, bad = 0.0, []
for name in ok:
    r = json.load(open(os.path.join(work, name + ".json")))
    codes = r.get("statusCodeDistribution", {})
    errors = r.get("errorDistribution", {})
    n = sum(codes.values())
    rps = r["summary"]["requestsPerSec"]
    p = r["latencyPercentiles"]
    total += rps
    print(f"{name:<12} {n:>9} {rps:>8.1f} {p['p50'] * 1000:>8.1f} {p['p99'] * 1000:>8.1f}  {codes}")
    # A request still in flight when the 30 s ended is cut by oha, not failed by us.
    errors = {e: c for e, c in errors.items() if "aborted due to deadline" not in e}
    unexpected = {c: k for c, k in codes.items() if c not in ok[name] | {"429"}}
    if name == "create_user" and "409" in unexpected:
        print(f"{'':<12} 409 x{unexpected.pop('409')}: oha drew the same body twice (a correct answer)")
    if name == "payment" and "409" in unexpected:
        # oha sends one Idempotency-Key from every connection: a request that arrives
        # while the first is still running is a 409 `idempotency-in-progress`, as documented.
        print(f"{'':<12} 409 x{unexpected.pop('409')}: the same Idempotency-Key while its first request ran (a correct answer)")
    if unexpected or errors:
        bad.append((name, unexpected, errors))
print(f"{'all':<12} {'':>9} {total:>8.1f}")
for name, codes, errors in bad:
    print(f"load: {name}: unexpected {codes} {errors}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
