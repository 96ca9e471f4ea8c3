#!/usr/bin/env bash
# Checks the Helm chart without a cluster: `helm lint --strict` and `helm template` for each set
# of values below, every rendered manifest validated against the Kubernetes schemas
# (kubernetes-validate --strict, for the oldest and a recent supported version), and the checks
# themselves checked: values the chart must refuse are refused, and a manifest with an unknown
# field fails validation. Tools: scripts/ensure-deps.sh helm.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[helm-check] $*"; }
venv=${VIDEOCALL_TOOLS_VENV:-$HOME/.cache/videocall/tools-venv}
helm=$venv/bin/helm
validate=$venv/bin/kubernetes-validate
chart=helm/videocall
kube_versions=(1.25 1.33)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name, then --set flags
scenarios=(
  "defaults|"
  "in-chart-postgresql|--set postgresql.enabled=true"
  "external-nats-and-database|--set nats.enabled=false --set nats.url=nats://nats.messaging:4222 --set externalDatabase.url=postgres://videocall:pw@db:5432/videocall --set secrets.jwtSecret=s3cret"
  "existing-secret-no-autoscaling|--set secrets.existingSecret=videocall-secrets --set actixApi.autoscaling.enabled=false --set webtransport.autoscaling.enabled=false --set actixApi.podDisruptionBudget.enabled=false"
  "nodeport-cert-manager-tls-ingress|--set webtransport.service.type=NodePort --set webtransport.service.nodePort=30443 --set webtransport.publicPort=30443 --set webtransport.tls.certManager.enabled=true --set ingress.className=nginx --set ingress.tls[0].secretName=videocall-tls --set ingress.tls[0].hosts[0]=videocall.example.com"
  "websocket-only-no-ingress|--set webtransport.enabled=false --set ingress.enabled=false"
)

for scenario in "${scenarios[@]}"; do
  name=${scenario%%|*}
  read -r -a flags <<<"${scenario#*|}"
  "$helm" lint --strict --quiet "$chart" "${flags[@]}" >"$out/lint.txt" 2>&1 \
    || { cat "$out/lint.txt" >&2; echo "[helm-check] lint failed: $name" >&2; exit 1; }
  "$helm" template videocall "$chart" --namespace videocall "${flags[@]}" >"$out/$name.yaml"
  kinds=$(grep -c '^kind:' "$out/$name.yaml")
  for version in "${kube_versions[@]}"; do
    # CRDs (cert-manager's Certificate) have no bundled schema: a warning, not an error.
    "$validate" --strict --quiet -k "$version" "$out/$name.yaml" >"$out/validate.txt" 2>&1 \
      || { cat "$out/validate.txt" >&2; echo "[helm-check] $name does not validate against Kubernetes $version" >&2; exit 1; }
  done
  say "$name: lint ok, $kinds manifests valid for Kubernetes ${kube_versions[*]}$(grep -q WARN "$out/validate.txt" && echo " ($(grep -c WARN "$out/validate.txt") without a bundled schema: $(grep -o 'kind [A-Za-z]*' "$out/validate.txt" | sort -u | cut -d' ' -f2 | paste -sd,))")"
done

# Protected meetings by default (the meetings issue): the relays get OPEN_MEETINGS=false.
grep -q 'OPEN_MEETINGS: "false"' "$out/defaults.yaml" \
  || { echo "[helm-check] the default release allows open meetings by URL" >&2; exit 1; }
say "protected meetings by default (OPEN_MEETINGS=false)"

# Values the chart must refuse.
if "$helm" template videocall "$chart" --set nats.enabled=false >/dev/null 2>"$out/refused.txt"; then
  echo "[helm-check] the chart rendered without any NATS; it must refuse" >&2
  exit 1
fi
grep -q "need NATS" "$out/refused.txt" || { cat "$out/refused.txt" >&2; exit 1; }
say "refuses a release without NATS"
# A grace period the drain does not fit in: the pod would be killed while its clients move.
if "$helm" template videocall "$chart" --set actixApi.terminationGracePeriodSeconds=15 >/dev/null 2>"$out/refused.txt"; then
  echo "[helm-check] the chart rendered a grace period shorter than the drain; it must refuse" >&2
  exit 1
fi
grep -q "must exceed" "$out/refused.txt" || { cat "$out/refused.txt" >&2; exit 1; }
say "refuses a termination grace period shorter than the drain"

# The validator is not a rubber stamp: a Service with a misspelt field fails.
sed 's/^  ports:$/  portz:/' "$out/defaults.yaml" >"$out/broken.yaml"
if "$validate" --strict --quiet -k "${kube_versions[-1]}" "$out/broken.yaml" >/dev/null 2>&1; then
  echo "[helm-check] kubernetes-validate accepted a manifest with an unknown field" >&2
  exit 1
fi
say "rejects a manifest with an unknown field"
say "all checks passed"
