# The two commands of the quick start: `make run` and `make test`.
# Each installs what it needs first (scripts/ensure-deps.sh) and is idempotent.

CARGO ?= cargo
SHELL := /bin/bash
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
UI_DIST := yew-ui/dist
# The e2e suite's build of the app: with the in-browser E2EE benchmark (feature `bench`) that the
# perf test runs; the production build (`make ui`) leaves it out.
E2E_UI_DIST := $(TARGET_DIR)/ui-e2e

.PHONY: test run deps lint unit bins wasm screenshots core-deps bench bench-micro soak fmt ui e2e cli-aarch64 aarch64 test-cli-aarch64 fuzz helm-check docker-lint images image-cli-arm64 up down test-compose compose

test: deps lint core-deps wasm unit fuzz ui e2e aarch64 helm-check docker-lint compose
	@echo "[test] all checks passed"

deps:
	@scripts/ensure-deps.sh wasm nats postgres nasm libclang cmake libvpx ffmpeg alsa wasm-bindgen chromium firefox e2e

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) clippy -p yew-ui -p videocall-client -p videocall-types --target wasm32-unknown-unknown -- -D warnings
	$(CARGO) clippy -p yew-ui --target wasm32-unknown-unknown --features bench -- -D warnings

core-deps:
	@scripts/check-core-deps.sh

wasm:
	$(CARGO) build -p videocall-types -p videocall-client --target wasm32-unknown-unknown

# Tests start their own nats-server on free ports, and run the service binaries as processes:
# build those first (cargo test alone does not build every package's binaries).
bins:
	$(CARGO) build --workspace --bins --all-features

unit: bins
	$(CARGO) test --workspace --all-features

# Fuzzing (fuzz/README.md): each target for FUZZ_SECONDS (default 30) from its checked-in seeds,
# built with the stable toolchain into $(TARGET_DIR)/fuzz. A crash, timeout or OOM fails the run
# and its input is kept under $(TARGET_DIR)/fuzz/artifacts/<target>/. About 4 min with a warm
# build (2 cores), plus about 3 min for a cold one.
FUZZ_SECONDS ?= 30
fuzz:
	@scripts/ensure-deps.sh cxx
	CARGO_TARGET_DIR=$(abspath $(TARGET_DIR)) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# The browser app, built into yew-ui/dist.
ui:
	@scripts/ensure-deps.sh wasm wasm-bindgen
	scripts/build-ui.sh $(UI_DIST)

# Browser tests: real Chromium (fake camera and microphone) against real single nodes, serving
# the app built with the `bench` feature (the perf test calls window.videocallE2eeBench); the
# recording test checks videocall-cli's WebM with ffprobe.
e2e: bins
	@scripts/ensure-deps.sh wasm wasm-bindgen chromium firefox e2e ffmpeg
	UI_FEATURES=bench scripts/build-ui.sh $(E2E_UI_DIST)
	cd e2e && ACTIX_API_BIN=$(abspath $(TARGET_DIR))/debug/actix-api \
		VIDEOCALL_CLI_BIN=$(abspath $(TARGET_DIR))/debug/videocall-cli \
		UI_DIR=$(abspath $(E2E_UI_DIST)) npm test

# The README's screenshots (docs/screenshots/*.png) from real pages: e2e/screenshots.js.
screenshots: bins
	@scripts/ensure-deps.sh wasm wasm-bindgen chromium emoji-font e2e
	UI_FEATURES=bench scripts/build-ui.sh $(E2E_UI_DIST)
	cd e2e && ACTIX_API_BIN=$(abspath $(TARGET_DIR))/debug/actix-api \
		UI_DIR=$(abspath $(E2E_UI_DIST)) node screenshots.js

# One process: the UI and HTTP + WebSocket on :8080, WebTransport on :4433 (udp), in-process bus.
run: ui
	$(CARGO) build --release -p actix-api
	$(CARGO) run --release -p actix-api -- --webtransport --ui-dir $(UI_DIST) $(RUN_ARGS)

# The system benchmark (docs/PERFORMANCE.md): release builds, then every scenario against freshly
# started nodes (a single node; two nodes on nats-server for (e)), ≈ 10 s of media per run, and
# the table, goals and plot regenerated. Under 20 minutes on the 2-core machine, build included
# when warm. Extra flags for videocall-bench in BENCH_ARGS, e.g. BENCH_ARGS="--only b,g --no-write".
bench:
	@scripts/ensure-deps.sh nats
	$(CARGO) build --release -p actix-api -p videocall-bot
	ulimit -n 65536 2>/dev/null || true; \
	timeout -k 10 1500 $(TARGET_DIR)/release/videocall-bench --out-dir docs $(BENCH_ARGS)

# The soak (docs/RELIABILITY.md; not part of `make test`): one release node, 10 meetings × 5
# participants joining and leaving for SOAK_MINUTES (30 by default; e.g. `make soak SOAK_MINUTES=2`
# for a trial), the node's RSS and the delivered frames/s sampled every 10 s into docs/soak.json
# and docs/soak.svg. Fails unless RSS stays within 5 % after the warm-up and the delivered rate
# holds (>= 95 % of the first window). Extra flags for videocall-bench in SOAK_ARGS (--no-write).
SOAK_MINUTES ?= 30
soak:
	$(CARGO) build --release -p actix-api -p videocall-bot
	ulimit -n 65536 2>/dev/null || true; \
	timeout -k 10 $$(( $(SOAK_MINUTES) * 60 + 600 )) $(TARGET_DIR)/release/videocall-bench \
		--soak-minutes $(SOAK_MINUTES) --out-dir docs $(SOAK_ARGS)

# Criterion micro-benchmarks: the relay core's fan-out and E2EE seal/open/wrap.
bench-micro:
	$(CARGO) bench -p videocall-relay --bench fanout
	$(CARGO) bench -p videocall-client --bench e2ee

fmt:
	$(CARGO) fmt --all

AARCH64_ENV = CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
	CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++

# videocall-cli for the Raspberry Pi (aarch64-unknown-linux-gnu, Debian cross toolchain).
cli-aarch64:
	@scripts/ensure-deps.sh nasm libclang cmake aarch64
	$(AARCH64_ENV) $(CARGO) build --release -p videocall-cli --no-default-features --features camera --target aarch64-unknown-linux-gnu
	@file $(TARGET_DIR)/aarch64-unknown-linux-gnu/release/videocall-cli

# That binary under qemu-aarch64 streams the test pattern to a local node (host debug build);
# a host receiver must decode >= 90% of it. Part of `make test` (after `unit`, which builds the
# host binaries): about 3.5 min more on a cold machine (cross toolchain, target, cross build).
aarch64: cli-aarch64
	CARGO_TARGET_DIR=$(TARGET_DIR) scripts/test-cli-aarch64.sh

test-cli-aarch64: cli-aarch64
	$(CARGO) build -p videocall-cli -p actix-api
	CARGO_TARGET_DIR=$(TARGET_DIR) scripts/test-cli-aarch64.sh

# The Helm chart without a cluster (docs/DEPLOY.md): helm lint and helm template for several sets
# of values, every manifest validated against the Kubernetes schemas. About a minute.
helm-check:
	@scripts/ensure-deps.sh helm
	scripts/helm-check.sh

# The Docker files without an engine (scripts/docker-lint.sh): hadolint on both Dockerfiles (the
# multi-stage one needs a registry and is not built here), their runtime stages alike, the compose
# files valid. A few seconds.
docker-lint:
	@scripts/ensure-deps.sh docker hadolint
	scripts/docker-lint.sh

# Docker images (docker/Dockerfile.prebuilt) from this checkout's binaries, on base images made
# from Debian's packages (cached under ~/.cache/videocall): no registry needed. A running Docker
# engine is needed (scripts/test-compose.sh starts one when none answers). IMAGE_PROFILE=debug
# uses the debug binaries `make test` already built.
IMAGE_PROFILE ?= release
images: ui
	@scripts/ensure-deps.sh docker
	$(CARGO) build $(if $(filter release,$(IMAGE_PROFILE)),--release) -p actix-api -p webtransport-server -p videocall-service -p videocall-cli -p videocall-bot
	CARGO_TARGET_DIR=$(TARGET_DIR) PROFILE=$(IMAGE_PROFILE) UI_DIST=$(UI_DIST) scripts/docker-images.sh

# The Raspberry Pi image videocall/videocall-cli:latest-arm64 (linux/arm64) from the cross-built
# binary, on an arm64 Debian base made with debootstrap; its RUN step and the check that it
# starts run under qemu (scripts/docker-image-cli-arm64.sh).
image-cli-arm64: cli-aarch64
	@scripts/ensure-deps.sh docker arm64
	CARGO_TARGET_DIR=$(TARGET_DIR) scripts/docker-image-cli-arm64.sh

# The compose stack from this checkout (docker-compose.yaml with the local base images).
# Users with a registry type `docker compose up` instead.
COMPOSE = docker-compose -f docker-compose.yaml -f docker/compose.local-images.yaml
up: images
	$(COMPOSE) up -d --no-build
	@echo "videocall is running: open http://localhost:$${VIDEOCALL_HTTP_PORT:-8080}/meeting/<your-name>/<meeting-id>  (make down stops it)"

down:
	$(COMPOSE) down

# The compose test (scripts/test-compose.sh): images, up, health, the CLI (and the arm64 CLI image,
# under qemu) and two browsers across the compose network, a restart of actix-api that must drain,
# down -v. Starts dockerd if none answers.
test-compose: ui cli-aarch64
	@scripts/ensure-deps.sh docker arm64 chromium e2e
	$(CARGO) build $(if $(filter release,$(IMAGE_PROFILE)),--release) -p actix-api -p webtransport-server -p videocall-service -p videocall-cli -p videocall-bot
	CARGO_TARGET_DIR=$(TARGET_DIR) PROFILE=$(IMAGE_PROFILE) UI_DIST=$(UI_DIST) ARM64_CLI=1 scripts/test-compose.sh

# The compose test inside `make test`: the debug binaries `bins` built and the UI `e2e` built,
# so no release build. Starts dockerd if none answers; skips (saying so) only outside CI when no
# engine can run at all. About 2 min warm (images from debug binaries ≈ 30 s), plus the base
# images once per machine (debootstrap: 2–4 min for the three, up to 11 min for the arm64 one
# under qemu, made alongside them).
compose: ui bins cli-aarch64
	@scripts/ensure-deps.sh docker arm64 chromium e2e
	CARGO_TARGET_DIR=$(TARGET_DIR) PROFILE=debug UI_DIST=$(UI_DIST) ARM64_CLI=1 scripts/test-compose.sh
