#!/usr/bin/env bash
# Starts a local cluster of 3 masters and 3 tablet servers on loopback addresses
# (127.0.0.11-13 and 127.0.0.21-23) over mutual TLS (a CA and certificates made with
# `kudu cert` in the state directory; KUDU_INSECURE=1 for plaintext), prints how to use the
# CLI against it, and runs until Ctrl-C. With --smoke it runs a few CLI commands against the
# cluster and exits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

bash scripts/setup.sh >/dev/null
cargo build --bin kudu
kudu="$CARGO_TARGET_DIR/debug/kudu"
state="${KUDU_LOCAL_DIR:-$(mktemp -d /tmp/kudu-local.XXXXXX)}"
mkdir -p "$state"

masters="127.0.0.11:7051,127.0.0.12:7051,127.0.0.13:7051"
pids=()
cleanup() {
    trap - EXIT INT TERM
    echo "stopping the local cluster"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# One certificate per process naming its address, one `admin` certificate for the CLI.
certs="$state/certs"
security() { # ROLE NAME...: the security flag of a process
    if [ "${KUDU_INSECURE:-}" = 1 ]; then echo "--insecure"; return; fi
    local role=$1 dir="$certs/$1-$2"
    shift
    [ -f "$dir/tls.crt" ] || "$kudu" cert create --ca "$certs/ca" --role "$role" --out "$dir" "$@" >/dev/null
    echo "--certs-dir=$dir"
}
if [ "${KUDU_INSECURE:-}" != 1 ] && [ ! -f "$certs/ca/ca.crt" ]; then
    "$kudu" cert create-ca --out "$certs/ca" >/dev/null
fi

for i in 1 2 3; do
    "$kudu" master run --data-dir "$state/master-$i" --rpc-addr "127.0.0.1$i:7051" \
        --http-addr "127.0.0.1$i:8051" --master-addresses "$masters" \
        "$(security master "127.0.0.1$i")" >"$state/master-$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2 3; do
    "$kudu" tserver run --data-dir "$state/tserver-$i" --rpc-addr "127.0.0.2$i:7050" \
        --master-addresses "$masters" "$(security tserver "127.0.0.2$i")" >"$state/tserver-$i.log" 2>&1 &
    pids+=($!)
done

export KUDU_MASTERS="$masters"
cli_security="KUDU_INSECURE=1"
if [ "${KUDU_INSECURE:-}" != 1 ]; then
    security admin admin >/dev/null
    export KUDU_CERTS_DIR="$certs/admin-admin"
    cli_security="KUDU_CERTS_DIR=$KUDU_CERTS_DIR   (an admin certificate; kudu cert create --role client for apps)"
fi
deadline=$(( $(date +%s) + 120 ))
until "$kudu" tserver list --format json 2>/dev/null | grep -c '"live": true' | grep -q 3; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "the cluster did not come up; logs are in $state" >&2
        exit 1
    fi
    sleep 0.5
done

cat <<MSG

A local Kudu cluster is running: 3 masters (Raft) and 3 tablet servers on loopback.
Data and logs: $state

  export KUDU_MASTERS=$masters
  export $cli_security
  $kudu master list
  $kudu tserver list
  $kudu table create metrics --columns host:string,ts:unixtime_micros,value:double --primary-key host,ts --partitions 3 --replicas 3
  $kudu table list
  $kudu table alter metrics --add-column unit:string
  $kudu table describe metrics
  $kudu master step-down
  curl http://127.0.0.11:8051/masters    (also /tables, /tablet-servers, /metrics, /healthz)

Kill a master (kill -9 a pid of: ${pids[*]:0:3}) and the others elect a new leader.
Press Ctrl-C to stop the cluster.
MSG

if $smoke; then
    "$kudu" master list
    "$kudu" table create smoke --columns id:int64,v:string --primary-key id --partitions 3 --replicas 3
    "$kudu" table describe smoke
    "$kudu" master step-down
    "$kudu" table list
    exit 0
fi
wait
