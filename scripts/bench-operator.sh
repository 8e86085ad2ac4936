#!/usr/bin/env bash
# Resident memory of a release `kudu-operator` (issue 11's "Operator" figure), idle and with
# 100 KuduClusters (3 masters + 3 tablet servers each) on the local control plane (e2e/).
#
# The operator runs out of cluster, through a kubeconfig, with the arguments and environment
# the Helm chart gives it (`run`, JSON logs, RUST_LOG=info, Lease in its own namespace,
# every namespace watched, the default 15 s Lease); only the HTTP port (any free one) differs.
# KUDU_BENCH_LEASE_SECONDS sets a longer Lease for a heavily loaded machine (see below). The control plane runs
# with no nodes, so the pods the StatefulSets create stay Pending: on 2 cores the processes of
# 600 pods could not run. The clusters therefore reach this state, which the script checks:
# certificates (CA and pod Secrets), ConfigMap, Services, PodDisruptionBudgets, NetworkPolicy,
# RBAC and both StatefulSets applied, a status written for the current generation
# (Progressing, no master running), and the operator, which asks no master of a cluster
# none of whose master pods runs, requeueing each cluster after 10 s, doubling up to 160 s
# while nothing changes (a pod change reconciles it at once). Memory is sampled from /proc/PID/status (VmRSS,
# and VmHWM: the peak) every 5 seconds, after the operator leads and has been idle for a
# while, and again after every cluster was reconciled; the table shows the maximum of the
# samples.
#
# Usage: bash scripts/bench-operator.sh [--json] [--clusters N] [--samples N]
# Builds kudu-operator and the local control plane in release mode into
# ~/.cache/kudu-target-release (or $KUDU_RELEASE_TARGET_DIR; a debug API server under 100
# clusters' reconciles answered too slowly on a loaded 2-core machine for the operator to
# keep its Lease). KUDU_OPERATOR_BIN=path measures that operator binary instead;
# KUDU_BENCH_KEEP=1 keeps the logs.
# Exits non-zero when a step fails (not when a goal is missed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

json=false
clusters=100
samples=10
while [ $# -gt 0 ]; do
    case "$1" in
        --json) json=true ;;
        --clusters) clusters="$2"; shift ;;
        --samples) samples="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# Seconds between samples; seconds the operator is left alone before the first one.
interval=5
settle=15

bash scripts/setup.sh >/dev/null
export CARGO_TARGET_DIR="${KUDU_RELEASE_TARGET_DIR:-$HOME/.cache/kudu-target-release}"
source scripts/env.sh
# Two builds, not one: built together, shared dependencies would get the union of both
# packages' features and the operator would not be the binary a user builds.
cargo build --release --bin local-cluster -p kudu-e2e >&2
operator_bin="${KUDU_OPERATOR_BIN:-$CARGO_TARGET_DIR/release/kudu-operator}"
if [ -z "${KUDU_OPERATOR_BIN:-}" ]; then
    cargo build --release --bin kudu-operator -p kudu-operator >&2
fi

state="$(mktemp -d /tmp/kudu-bench-operator.XXXXXX)"
cluster_pid=""
operator_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [ -n "$operator_pid" ] && kill -TERM "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null
    [ -n "$cluster_pid" ] && kill -TERM "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
    if [ "$status" -eq 0 ] && [ -z "${KUDU_BENCH_KEEP:-}" ]; then rm -rf "$state"; else echo "logs are in $state" >&2; fi
    exit "$status"
}
trap cleanup EXIT INT TERM
log() { echo "bench-operator: $*" >&2; }
# Fails with `$1` and the operator's log tail if it exited or $deadline passed.
operator_alive_or_fail() {
    if ! kill -0 "$operator_pid" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
        log "$1"
        tail -n 50 "$state/operator.log" >&2
        exit 1
    fi
}

: >"$state/local-cluster.log"
"$CARGO_TARGET_DIR/release/local-cluster" up --nodes 0 --state-dir "$state/cluster" >"$state/local-cluster.log" 2>&1 &
cluster_pid=$!
deadline=$(( $(date +%s) + 120 ))
kubeconfig=""
until [ -n "$kubeconfig" ]; do
    kubeconfig="$(sed -n 's/^KUBECONFIG=//p' "$state/local-cluster.log" | head -n 1)"
    if ! kill -0 "$cluster_pid" 2>/dev/null || [ "$(date +%s)" -gt "$deadline" ]; then
        log "local-cluster did not start; its log:"
        cat "$state/local-cluster.log" >&2
        exit 1
    fi
    [ -n "$kubeconfig" ] || sleep 0.2
done
export KUBECONFIG="$kubeconfig"
kubectl apply -f crds/kudu.dev_kuduclusters.yaml >&2
kubectl create namespace kudu-system >&2

# As the chart's Deployment runs it (charts/kudu-operator/templates/deployment.yaml). Until
# session 8 the default 15 s Lease (10 s to renew, 3 s per call) was lost while reconciling
# 30-100 clusters under a load average of 12-16, and the script used 60 s; it holds now
# (docs/benchmarks.md). KUDU_BENCH_LEASE_SECONDS: a longer Lease, which does not change memory.
: >"$state/operator.log"
POD_NAME=kudu-operator-bench POD_NAMESPACE=kudu-system RUST_LOG=info "$operator_bin" run \
    --http-addr=127.0.0.1:0 --lease-name=kudu-operator --lease-namespace=kudu-system --log-format=json \
    --lease-duration-seconds="${KUDU_BENCH_LEASE_SECONDS:-15}" \
    --pod-labels=app.kubernetes.io/name=kudu-operator,app.kubernetes.io/instance=kudu-operator \
    >"$state/operator.log" 2>&1 &
operator_pid=$!
deadline=$(( $(date +%s) + 120 ))
until grep -q '"leading"' "$state/operator.log"; do
    operator_alive_or_fail "the operator did not take the Lease; its log:"
    sleep 0.2
done

kib() { awk -v key="$1:" '$1 == key {print $2}' "/proc/$operator_pid/status"; }
# Prints "max-VmRSS-KiB VmHWM-KiB" over $samples samples $interval seconds apart.
measure() {
    local max=0 rss
    for _ in $(seq "$samples"); do
        kill -0 "$operator_pid" 2>/dev/null || { log "the operator exited"; tail -n 50 "$state/operator.log" >&2; exit 1; }
        rss=$(kib VmRSS)
        [ "$rss" -gt "$max" ] && max=$rss
        sleep "$interval"
    done
    # The kernel updates VmHWM lazily: never report a peak below a sample.
    local hwm
    hwm=$(kib VmHWM)
    echo "$max $(( hwm > max ? hwm : max ))"
}
breakdown() { # Where the resident pages are: anonymous (heap, stacks) or file-backed (the binary).
    awk '$1 == "RssAnon:" || $1 == "RssFile:" || $1 == "Threads:" {printf "%s %s ", $1, $2}' "/proc/$operator_pid/status"
}

log "operator leads; idle for ${settle}s, then $samples samples every ${interval}s"
sleep "$settle"
read -r idle_rss idle_hwm < <(measure)
idle_breakdown="$(breakdown)"
log "idle: VmRSS max $idle_rss KiB, VmHWM $idle_hwm KiB; $idle_breakdown"

# Clusters spread over 10 namespaces, applied 10 at a time: all 100 at once made 100
# reconciles run at once, and on this loaded machine the operator's Lease renewal then got
# no answer in time (it stepped down; see docs/benchmarks.md).
namespaces=$(( clusters < 10 ? clusters : 10 ))
batch=10
for n in $(seq 0 $(( namespaces - 1 ))); do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: bench-%d}\n---\n' "$n"
done | kubectl apply -f - >/dev/null
cluster_yaml() {
    cat <<YAML
apiVersion: kudu.dev/v1alpha1
kind: KuduCluster
metadata: {name: c$1, namespace: bench-$(( $1 % namespaces ))}
spec:
  image: kudu:dev
  masters: {replicas: 3, storage: {size: 1Gi}}
  tservers: {replicas: 3, storage: {size: 1Gi}}
---
YAML
}

# How many clusters have a status for their generation and both StatefulSets.
reconciled() {
    python3 - <<'PY'
import json, subprocess
get = lambda kind: json.loads(subprocess.run(["kubectl", "get", kind, "-A", "-o", "json"], check=True,
                                             capture_output=True, text=True).stdout)["items"]
sts = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in get("statefulsets")}
done = 0
for c in get("kuduclusters"):
    meta, status = c["metadata"], c.get("status") or {}
    key = lambda role: (meta["namespace"], f'{meta["name"]}-{role}')
    if status.get("observedGeneration") == meta.get("generation") and key("master") in sts and key("tserver") in sts:
        done += 1
print(done)
PY
}
log "applying $clusters KuduClusters (3 masters + 3 tablet servers each), $batch at a time"
applied_at=$(date +%s)
deadline=$(( applied_at + 900 ))
for first in $(seq 0 "$batch" $(( clusters - 1 ))); do
    last=$(( first + batch < clusters ? first + batch : clusters ))
    for i in $(seq "$first" $(( last - 1 ))); do cluster_yaml "$i"; done | kubectl apply -f - >/dev/null
    while :; do
        done_count=$(reconciled)
        [ "$done_count" -ge "$last" ] && break
        operator_alive_or_fail "only $done_count of $last KuduClusters were reconciled; operator log tail:"
        sleep 2
    done
done
reconcile_secs=$(( $(date +%s) - applied_at ))
log "all $clusters reconciled after ${reconcile_secs}s; settling ${settle}s, then $samples samples every ${interval}s"
sleep "$settle"
read -r many_rss many_hwm < <(measure)
many_breakdown="$(breakdown)"
log "with clusters: VmRSS max $many_rss KiB, VmHWM $many_hwm KiB; $many_breakdown"
pods=$(kubectl get pods -A --no-headers 2>/dev/null | wc -l)
pending=$(kubectl get pods -A --no-headers --field-selector=status.phase=Pending 2>/dev/null | wc -l)
# How many clusters stand where: their Available condition's status and reason.
phases=$(kubectl get kuduclusters -A -o json | python3 -c '
import collections, json, sys
seen = collections.Counter()
for c in json.load(sys.stdin)["items"]:
    a = [x for x in (c.get("status") or {}).get("conditions", []) if x["type"] == "Available"]
    seen["Available=%s/%s" % (a[0]["status"], a[0].get("reason")) if a else "no Available condition"] += 1
print(", ".join("%s: %d" % kv for kv in sorted(seen.items())))')
errors=$(grep -c '"reconcile error"' "$state/operator.log" || true)
load="$(cut -d' ' -f1-3 /proc/loadavg)"

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
if $json; then
    cat <<JSON
{"clusters": $clusters, "samples": $samples, "interval_secs": $interval, "reconcile_secs": $reconcile_secs,
 "idle": {"rss_mib": $(mib "$idle_rss"), "hwm_mib": $(mib "$idle_hwm")},
 "with_clusters": {"rss_mib": $(mib "$many_rss"), "hwm_mib": $(mib "$many_hwm")},
 "goals_mib": {"idle": 25, "with_clusters": 60},
 "pods": $pods, "pending_pods": $pending, "reconcile_errors": $errors, "load_average": "$load"}
JSON
else
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $load"
    printf '%-46s %10s %10s\n' "figure" "value" "goal"
    printf '%-46s %7s MiB %10s\n' "operator RSS idle (max of $samples)" "$(mib "$idle_rss")" "< 25 MiB"
    printf '%-46s %7s MiB %10s\n' "operator peak RSS idle (VmHWM)" "$(mib "$idle_hwm")" ""
    printf '%-46s %7s MiB %10s\n' "operator RSS with $clusters KuduClusters (max of $samples)" "$(mib "$many_rss")" "< 60 MiB"
    printf '%-46s %7s MiB %10s\n' "operator peak RSS with $clusters (VmHWM)" "$(mib "$many_hwm")" ""
    echo "idle: $idle_breakdown(KiB); with clusters: $many_breakdown(KiB)"
    echo "$clusters KuduClusters reconciled in ${reconcile_secs}s ($phases); $pods pods, $pending Pending (no nodes); $errors reconcile errors logged"
fi
