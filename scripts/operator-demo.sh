#!/usr/bin/env bash
# The operator on the local Kubernetes control plane (e2e/): builds the workspace, starts
# `local-cluster up`, installs the CRD and the operator's Helm chart (the real Helm library
# through helm-sdkpy, as the e2e tests do), applies a KuduCluster of 3 masters and 3 tablet
# servers, waits until it is Available, writes rows to a replicated table and scans them
# back, and prints how to use kubectl against it. Runs
# until Ctrl-C, then stops every process it started. With --smoke it exits 0 once the
# cluster is Available and the rows came back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

bash scripts/setup.sh >/dev/null
# All targets, like the tests: the same feature set, so nothing is rebuilt between them.
cargo build --workspace --all-targets
bin="$CARGO_TARGET_DIR/debug"
state="${KUDU_DEMO_DIR:-$(mktemp -d /tmp/kudu-operator-demo.XXXXXX)}"
mkdir -p "$state"

cluster_pid=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$cluster_pid" ]; then
        echo "stopping the local control plane (and its pods)"
        kill -TERM "$cluster_pid" 2>/dev/null || true
        wait "$cluster_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

# Pods inherit this PATH: the masters run `kudu location` and their preStop hook runs
# `kudu` by name, as they would from an image's /usr/local/bin.
PATH="$bin:$PATH" "$bin/local-cluster" up --nodes 3 --state-dir "$state/cluster" --bin-dir "$bin" \
    >"$state/local-cluster.log" 2>&1 &
cluster_pid=$!

deadline=$(( $(date +%s) + 120 ))
kubeconfig=""
until [ -n "$kubeconfig" ]; do
    kubeconfig="$(sed -n 's/^KUBECONFIG=//p' "$state/local-cluster.log" | head -n 1)"
    if ! kill -0 "$cluster_pid" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
        echo "local-cluster did not start; its log:" >&2
        cat "$state/local-cluster.log" >&2
        exit 1
    fi
    [ -n "$kubeconfig" ] || sleep 0.2
done
export KUBECONFIG="$kubeconfig"

kubectl apply -f crds/kudu.dev_kuduclusters.yaml
kubectl create namespace kudu-system
helm_request=$(cat <<JSON
{"kubeconfig": "$KUBECONFIG", "namespace": "kudu-system", "action": "install", "release": "kudu-operator",
 "chart": "$PWD/charts/kudu-operator",
 "values": {"image": {"repository": "kudu-operator", "tag": "dev"}, "logFormat": "text"},
 "options": {"wait": true, "timeout": 120}}
JSON
)
HOME="$state/helm-home" e2e/.venv/bin/python e2e/tests/helm/driver.py "$helm_request" >"$state/helm.json"
if ! grep -q '"ok": true' "$state/helm.json"; then
    echo "helm install failed: $(cat "$state/helm.json")" >&2
    exit 1
fi
echo "helm: installed release kudu-operator in namespace kudu-system"

kubectl apply -f - <<'YAML'
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: demo, namespace: default}
spec:
  image: kudu:dev
  masters:
    replicas: 3
    storage: {size: 1Gi}
  tservers:
    replicas: 3
    storage: {size: 1Gi}
YAML

if ! kubectl wait --for=condition=Available kuduclusters/demo --timeout=180s; then
    kubectl get kuduclusters demo -o yaml >&2 || true
    echo "the KuduCluster did not become Available; state and logs are in $state" >&2
    exit 1
fi
kubectl get kuduclusters,pods,statefulsets

# Rows: a table replicated 3 ways over the tablet servers, written and scanned back with the
# CLI inside a master pod (it finds the masters through the pod's environment).
kubectl exec demo-master-0 -- kudu table create demo_rows --columns id:int64,name:string \
    --primary-key id --partitions 3 --replicas 3 --wait
printf '{"id": %d, "name": "row %d"}\n' 1 1 2 2 3 3 4 4 5 5 | kubectl exec -i demo-master-0 -- kudu row insert demo_rows
scanned=$(kubectl exec demo-master-0 -- kudu row scan demo_rows)
echo "$scanned"
if [ "$(echo "$scanned" | wc -l)" -ne 5 ]; then
    echo "expected 5 rows back from demo_rows; state and logs are in $state" >&2
    exit 1
fi

cat <<MSG

The operator runs a KuduCluster on the local control plane (state and pod logs: $state).

  export KUBECONFIG=$KUBECONFIG
  kubectl get kuduclusters demo -o yaml                     # conditions, members, leader
  kubectl get events --field-selector involvedObject.name=demo
  kubectl get secrets demo-ca demo-master-tls               # cluster CA and certificates (mutual TLS)
  kubectl exec demo-master-0 -- kudu master list            # the Raft group
  kubectl exec demo-master-0 -- kudu tserver list           # tablet servers and locations
  kubectl exec demo-master-0 -- kudu table describe demo_rows  # tablets, leaders, replicas
  kubectl exec demo-master-0 -- kudu row scan demo_rows --from 2 --limit 2
  kubectl patch kuduclusters demo --type merge -p '{"spec":{"masters":{"replicas":5}}}'
  kubectl delete pod demo-master-1                          # restarts with the same node id
  kubectl logs -n kudu-system -l app.kubernetes.io/name=kudu-operator

MSG

if $smoke; then
    echo "smoke test passed"
    exit 0
fi
echo "Ctrl-C stops everything."
wait "$cluster_pid"
