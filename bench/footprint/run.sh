#!/usr/bin/env bash
# The footprint table (make footprint): release binaries under aloft-footprint's own
# Runtime API against a moto that aloft-local provisions from template.yaml.
#
#   run.sh [aloft-footprint args...]     e.g. --cold 20 --warm 1000 --only users-api
#
# --only bin,bin (or FOOTPRINT_ONLY=bin,bin) builds and measures those functions alone,
# beside bare-echo: minutes instead of the half hour of every function. It then builds
# aloft-local alone too, which needs the debug function binaries of an earlier
# `cargo build --bins` (it checks they exist; they only have to be there, not current).
# FOOTPRINT_ARM64=0 skips the cargo-lambda arm64 build (sizes are then left out);
# FOOTPRINT_PROFILE=debug measures the debug binaries (a quick check of the harness only);
# FOOTPRINT_BUILD=0 measures what is built already (e.g. to compare with --bin-dir DIR).
# Everything it starts is stopped when it exits, however it exits.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="$root/.venv"
out="$root/target/bench"
mkdir -p "$out" "$root/.aloft"

# The functions the table covers, and the floor they are measured against.
bins=(users-api payments-api registry-api webhooks-api registry-sweep outbox-relay scaler-tick quality-tick)
extra=(bare-echo aloft-footprint)
only="${FOOTPRINT_ONLY:-}"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = --only ] && [ $((i + 1)) -lt ${#args[@]} ]; then only="${args[$((i + 1))]}"; fi
done
if [ -n "$only" ]; then
  IFS=, read -r -a bins <<<"$only"
  # aloft-footprint reads --only itself; pass the env var's list on when it came from there.
  if [[ " ${args[*]} " != *" --only "* ]]; then args+=(--only "$only"); fi
fi

profile="${FOOTPRINT_PROFILE:-release}"
build="${FOOTPRINT_BUILD:-1}"
if [ "$profile" = release ] && [ "$build" = 1 ]; then
  echo "footprint: building release binaries (fat LTO; minutes on two cores)..."
  cargo build --quiet --release $(printf -- '--bin %s ' "${bins[@]}" "${extra[@]}")
fi

if [ "${FOOTPRINT_ARM64:-1}" = 1 ] && [ "$profile" = release ] && [ "$build" = 1 ]; then
  if [ -x "$venv/bin/cargo-lambda" ] && rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
    echo "footprint: cargo lambda build --release --arm64 (the deployable artefacts)..."
    # zig comes from the venv (PyPI ziglang); cargo-lambda finds it as python -m ziglang.
    PATH="$venv/bin:$PATH" cargo lambda build --quiet --release --arm64 \
      $(printf -- '--bin %s ' "${bins[@]}" bare-echo)
    for b in "${bins[@]}" bare-echo; do
      # Lambda's zip as cargo-lambda makes it: the bootstrap alone, deflated.
      (cd "target/lambda/$b" && rm -f bootstrap.zip && "$venv/bin/python" -c \
        'import zipfile; z = zipfile.ZipFile("bootstrap.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9); z.write("bootstrap"); z.close()')
    done
  else
    echo "footprint: no cargo-lambda in .venv or no aarch64 standard library (rustup target add aarch64-unknown-linux-gnu): sizes left out" >&2
  fi
fi

if [ "$build" = 1 ]; then
  echo "footprint: building aloft-local (it provisions moto from template.yaml)..."
  if [ -n "$only" ]; then
    cargo build --quiet -p aloft-local --bin aloft-local
  else
    cargo build --quiet --workspace --bins
  fi
fi

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
unset AWS_PROFILE
# As the local stack allows (stack.sh): moto on two cores can queue a call for seconds.
export AWS_CALL_TIMEOUT_MS="${AWS_CALL_TIMEOUT_MS:-30000}"
logs="$(mktemp -d "$root/.aloft/footprint.XXXXXX")"
moto_port="$(free_port)"
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
"$venv/bin/python" local/moto_server.py 127.0.0.1 "$moto_port" >"$logs/moto.log" 2>&1 &
pids+=($!)
wait_http() { # url, pid, log
  for _ in $(seq 1 600); do
    "$venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "footprint: a helper exited during start-up; its log ($3):" >&2; tail -n 40 "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "footprint: $1 did not answer within 60 s" >&2; exit 1
}
wait_http "$AWS_ENDPOINT_URL/moto-api/" "${pids[-1]}" "$logs/moto.log"

# aloft-local creates the tables, queues and secret exactly as `make run` does; once it
# is ready it is stopped, so nothing but the measured process talks to moto.
port="$(free_port)"
target/debug/aloft-local --template template.yaml --bin-dir target/debug --port "$port" \
  --endpoint "$AWS_ENDPOINT_URL" --schedules manual \
  --parameter-overrides WebhookAllowPrivateUrls=true >"$logs/local.log" 2>&1 &
local_pid=$!
pids+=($local_pid)
wait_http "http://127.0.0.1:$port/_local/ready" "$local_pid" "$logs/local.log"
kill "$local_pid" 2>/dev/null || true
wait "$local_pid" 2>/dev/null || true

"target/$profile/aloft-footprint" --bin-dir "target/$profile" --lambda-dir target/lambda --out "$out" ${args[@]+"${args[@]}"}
