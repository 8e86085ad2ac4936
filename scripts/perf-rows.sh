#!/usr/bin/env bash
# Row benchmarks against a local cluster: 3 masters and 3 tablet servers on loopback
# (127.0.0.31-33 and 127.0.0.41-43, as scripts/local-cluster.sh does on other addresses).
# Measures, through `kudu perf`:
#   - write throughput into an RF 3 table (rows of ~100 bytes, batch 100), 1 and 16 clients,
#     with p50/p99/max batch latency;
#   - full-scan throughput;
#   - idle CPU (percent of one core, from /proc/PID/stat utime+stime) and RSS of each tablet
#     server while it hosts 1 000 replicas (a 1 000-partition RF 3 table), no client traffic.
# Each throughput figure is measured --repeat times (fresh table each time) and the idle CPU
# over --idle-windows consecutive windows; every run is printed. Ends with a summary table.
#
# Usage: bash scripts/perf-rows.sh [--release] [--seconds 10] [--idle-seconds 60]
#            [--idle-windows 2] [--repeat 2] [--partitions 1000] [--settle-seconds 600]
#            [--skip-rows] [--skip-idle]
# If the 1 000 tablets do not all have a leader within --settle-seconds, the idle CPU is
# measured anyway and the replicas' roles (from each tablet server's /metrics) say so.
# Extra tablet server flags (e.g. Raft timings) go in KUDU_PERF_TSERVER_FLAGS; KUDU_PERF_BIN
# names a prebuilt `kudu` binary to measure instead of building (e.g. to compare two builds).
# A debug build by default (the warm CI target directory); --release builds into its own
# target directory, ~/.cache/kudu-target-release, so CI's cache is untouched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

release=false seconds=10 idle_seconds=60 idle_windows=2 repeat=2 partitions=1000 settle_seconds=600
skip_rows=false skip_idle=false
while [ $# -gt 0 ]; do
    case "$1" in
        --release) release=true ;;
        --seconds) seconds="$2"; shift ;;
        --idle-seconds) idle_seconds="$2"; shift ;;
        --idle-windows) idle_windows="$2"; shift ;;
        --repeat) repeat="$2"; shift ;;
        --partitions) partitions="$2"; shift ;;
        --settle-seconds) settle_seconds="$2"; shift ;;
        --skip-rows) skip_rows=true ;;
        --skip-idle) skip_idle=true ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if $release; then
    export CARGO_TARGET_DIR="${KUDU_RELEASE_TARGET_DIR:-$HOME/.cache/kudu-target-release}"
fi
source scripts/env.sh
if [ -n "${KUDU_PERF_BIN:-}" ]; then
    kudu="$KUDU_PERF_BIN"
    build="prebuilt $KUDU_PERF_BIN"
elif $release; then
    cargo build --release --bin kudu
    kudu="$CARGO_TARGET_DIR/release/kudu"
    build=release
else
    # The same build as CI and the tests, so the warm target directory is reused as is.
    cargo build --workspace --all-targets
    kudu="$CARGO_TARGET_DIR/debug/kudu"
    build=debug
fi

state="${KUDU_PERF_DIR:-$(mktemp -d /tmp/kudu-perf.XXXXXX)}"
mkdir -p "$state"
masters="127.0.0.31:7151,127.0.0.32:7151,127.0.0.33:7151"
export KUDU_MASTERS="$masters"
# Plaintext gRPC for the servers and the CLI (the figures in docs/benchmarks.md are without TLS).
export KUDU_INSECURE=1
# shellcheck disable=SC2206
tserver_flags=(${KUDU_PERF_TSERVER_FLAGS:-})
pids=()
ts_pids=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # A tablet server stopping 1 000 groups can take long; give it 30 s, then SIGKILL.
    for _ in $(seq 60); do
        alive=false
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=true; done
        $alive || break
        sleep 0.5
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for i in 1 2 3; do
    "$kudu" master run --data-dir "$state/master-$i" --rpc-addr "127.0.0.3$i:7151" \
        --http-addr "127.0.0.3$i:8151" --master-addresses "$masters" >"$state/master-$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2 3; do
    "$kudu" tserver run --data-dir "$state/tserver-$i" --rpc-addr "127.0.0.4$i:7150" \
        --http-addr "127.0.0.4$i:8150" --master-addresses "$masters" "${tserver_flags[@]}" \
        >"$state/tserver-$i.log" 2>&1 &
    pids+=($!)
    ts_pids+=($!)
done

deadline=$(( $(date +%s) + 180 ))
until "$kudu" tserver list --format json 2>/dev/null | grep -c '"live": true' | grep -q 3; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "the cluster did not come up; logs are in $state" >&2
        exit 1
    fi
    sleep 0.5
done
echo "cluster up ($build build, data and logs in $state, tserver flags: ${tserver_flags[*]:-none})"

results="$state/results.jsonl"
: >"$results"
perf() { "$kudu" perf "$@" --format json --timeout-ms 60000 | tee -a "$results"; }

if ! $skip_rows; then
    for run in $(seq 1 "$repeat"); do
        table="perf_rows_$run"
        perf write --table "$table" --create --partitions 3 --replicas 3 --clients 1 --batch 100 \
            --row-bytes 100 --seconds "$seconds"
        perf write --table "$table" --clients 16 --batch 100 --row-bytes 100 --seconds "$seconds"
        perf scan --table "$table" --clients 1 --seconds "$seconds"
    done
fi

clk_tck=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_mib() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
idle_lines=()
if ! $skip_idle; then
    echo "creating a table of $partitions partitions, RF 3 (every tablet server hosts $partitions replicas)"
    created=$(date +%s)
    if "$kudu" table create idle_1000 --columns id:int64,payload:string --primary-key id \
        --partitions "$partitions" --replicas 3 --wait --timeout-ms "$(( settle_seconds * 1000 ))" >/dev/null; then
        echo "every tablet has a leader after $(( $(date +%s) - created )) s; letting leaders settle for 30 s"
    else
        echo "NOT SETTLED: some tablets have no leader after $(( $(date +%s) - created )) s; measuring anyway"
    fi
    sleep 30
    for window in $(seq 1 "$idle_windows"); do
        declare -A before=()
        for pid in "${ts_pids[@]}"; do before[$pid]=$(cpu_ticks "$pid"); done
        start_ns=$(date +%s%N)
        sleep "$idle_seconds"
        end_ns=$(date +%s%N)
        for i in 0 1 2; do
            pid=${ts_pids[$i]}
            used=$(( $(cpu_ticks "$pid") - before[$pid] ))
            pct=$(awk -v t="$used" -v hz="$clk_tck" -v ns="$(( end_ns - start_ns ))" \
                'BEGIN { printf "%.1f", 100 * t / hz / (ns / 1e9) }')
            metrics=$(curl -s "http://127.0.0.4$(( i + 1 )):8150/metrics")
            roles=$(echo "$metrics" | awk -F'[="]' \
                '/^kudu_tserver_replicas\{role=/ { n = $NF; gsub(/[^0-9]/, "", n); printf "%s%s=%s", sep, $3, n; sep="," }' | tr -d ' ')
            quiesced=$(echo "$metrics" | awk '/^kudu_tserver_replicas_quiesced / { print $2 }')
            line="{\"workload\":\"idle\",\"window\":$window,\"tserver\":$(( i + 1 )),\"replicas\":$partitions,\"seconds\":$idle_seconds,\"cpu_percent_of_core\":$pct,\"rss_mib\":$(rss_mib "$pid"),\"roles\":\"$roles\",\"quiesced\":${quiesced:-0}}"
            echo "$line" | tee -a "$results"
        done
        unset before
    done
fi

echo
echo "== summary ($build build; $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM; $(date -u +%Y-%m-%d)) =="
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'FIGURE':<34} {'VALUE':>12}  DETAIL")
for r in rows:
    if r["workload"] == "write":
        print(f"{'write, %d client(s), batch %d' % (r['clients'], r['batch']):<34} {r['rows_per_sec']:>10.0f}/s  "
              f"{r['operations_per_sec']:.0f} batches/s, p50 {r['latency']['p50_ms']} ms, "
              f"p99 {r['latency']['p99_ms']} ms, max {r['latency']['max_ms']} ms, errors {r['errors']}")
    elif r["workload"] == "scan":
        print(f"{'scan, %d client(s), %s' % (r['clients'], r['table']):<34} {r['rows_per_sec']:>10.0f}/s  "
              f"{r['operations']} full scans of ~{r['rows'] // max(r['operations'], 1)} rows, p50 {r['latency']['p50_ms']} ms")
    elif r["workload"] == "idle":
        print(f"{'idle tserver %d, window %d' % (r['tserver'], r['window']):<34} {r['cpu_percent_of_core']:>10.1f}%   "
              f"of one core over {r['seconds']} s, {r['replicas']} replicas, RSS {r['rss_mib']} MiB, {r.get('roles', '')}, {r.get('quiesced', 0)} quiesced")
PY
