# The two commands a newcomer needs: `make run` and `make test`. Both install what
# they need (Python tools into .venv; Rust crates through cargo).
SHELL := bash
.DEFAULT_GOAL := help
VENV := .venv
export SAM_CLI_TELEMETRY := 0

.PHONY: help setup run test lint fmt clippy template bench

help:
	@echo "make run    run the whole platform locally on http://127.0.0.1:$${ALOFT_PORT:-3000}"
	@echo "make test   run every check and test (format, lint, template, unit, end to end)"
	@echo "make bench  benchmarks against the local stack (DynamoDB requests per call, latency)"

setup:
	@local/scripts/setup.sh

run: setup
	@local/scripts/stack.sh run

test: setup lint
	@local/scripts/stack.sh test cargo test --workspace --all-targets --no-fail-fast

lint: fmt clippy template

fmt:
	cargo fmt --all --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks print numbers (requests per call, latency); no pass/fail on speed.
bench: setup
	@local/scripts/stack.sh test cargo bench --workspace

template: setup
	$(VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 $(VENV)/bin/sam validate --lint --template template.yaml
