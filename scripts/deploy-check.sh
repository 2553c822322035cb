#!/usr/bin/env bash
# Validates the deploy files with real validators: the Kustomize base and example overlay rendered by
# kubectl kustomize and checked against the Kubernetes schemas by kubernetes-validate (PyPI); the compose
# file by compose-spec (PyPI, the compose_spec crate's strict parser) plus its consistency with the code
# (scripts/deploy_check.py). Tools are pinned and installed once under ~/.cache/pasarela-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${PASARELA_TOOLS_DIR:-$HOME/.cache/pasarela-tools}"
venv="$tools/venv"
kube_version=1.32

pins="kubernetes-validate==1.37.0 compose-spec==0.2.1 PyYAML==6.0.3"
if [ "$(cat "$venv/pins" 2>/dev/null)" != "$pins" ]; then
  echo "deploy-check: installing $pins into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q $pins
  echo "$pins" >"$venv/pins"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
manifests=(deploy/k8s/base/secret.template.yaml)
if command -v kubectl >/dev/null 2>&1; then
  for dir in deploy/k8s/base deploy/k8s/overlays/example; do
    name="$(echo "$dir" | tr / -)"
    kubectl kustomize "$dir" >"$out/$name.yaml"
    echo "kustomize $dir: $(grep -c '^kind:' "$out/$name.yaml") resources"
    manifests+=("$out/$name.yaml")
  done
  # The example overlay's namespace reaches KEDA's queue names.
  queues="$(grep 'queueName:' "$out/deploy-k8s-overlays-example.yaml" | awk '{print $2}' | sort | tr '\n' ' ')"
  echo "example overlay, KEDA queues: $queues"
  if grep 'queueName:' "$out/deploy-k8s-overlays-example.yaml" | grep -vq 'queueName: acme\.'; then
    echo "deploy-check: a KEDA queue name does not follow PASARELA_NAMESPACE"; exit 1
  fi
else
  echo "deploy-check: kubectl not found, so the Kustomize files are checked one by one, not rendered"
  manifests+=(deploy/k8s/base/[!k]*.yaml)
fi
# --strict refuses fields the schema does not know. Custom resources (KEDA, Prometheus Operator) have no
# schema in the validator: it says so, and they are counted below.
"$venv/bin/kubernetes-validate" --strict -k "$kube_version" "${manifests[@]}" >"$out/validate.log" 2>&1 || {
  cat "$out/validate.log"; echo "deploy-check: kubernetes-validate failed"; exit 1;
}
echo "kubernetes-validate --strict -k $kube_version: $(grep -c ' passed ' "$out/validate.log") passed," \
  "$(grep -c "Couldn't find schema" "$out/validate.log") without a schema ($(grep -o "kind [A-Za-z]*" "$out/validate.log" | sort -u | awk '{print $2}' | tr '\n' ' '))," \
  "$(grep -cE ' failed |ERROR' "$out/validate.log" || true) failed"

"$venv/bin/python" scripts/deploy_check.py
