# The two commands of the quick start: `make run` and `make test`.
# Each installs what it needs first (scripts/ensure-deps.sh) and is idempotent.

CARGO ?= cargo
SHELL := /bin/bash

.PHONY: test run deps lint unit wasm core-deps bench fmt

test: deps lint core-deps wasm unit
	@echo "[test] all checks passed"

deps:
	@scripts/ensure-deps.sh wasm nats nasm

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

core-deps:
	@scripts/check-core-deps.sh

wasm:
	$(CARGO) build -p videocall-types -p videocall-client --target wasm32-unknown-unknown

# Tests start their own nats-server on free ports.
unit:
	$(CARGO) test --workspace --all-features

# One process: HTTP + WebSocket on :8080 and WebTransport on :4433 (udp), in-process bus.
run:
	@scripts/ensure-deps.sh
	$(CARGO) build --release -p actix-api
	$(CARGO) run --release -p actix-api -- --webtransport $(RUN_ARGS)

bench:
	$(CARGO) bench -p videocall-relay --bench fanout

fmt:
	$(CARGO) fmt --all
