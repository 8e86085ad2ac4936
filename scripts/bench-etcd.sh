#!/usr/bin/env bash
# Our masters and etcd side by side on loopback (issue 11's figures), one system at a time
# with the same workload through each: kill -9 of the leader, 10 rounds, time to the next
# acknowledged write of a client already running (median, p99, max); replicated writes of the
# same size (our AlterTable, etcd's put) from 1, 16 and 64 clients (throughput, p50, p99).
# Both systems fsync every commit and run with their defaults (extra flags for our masters:
# --master-flag=--raft-election-timeout-ms=1000, repeatable).
# `--figures tablet-writes --clients 16,64` compares rows inserted one per request into an
# RF 3 table on 3 tablet servers with etcd puts of the same size.
#
# Usage: bash scripts/bench-etcd.sh [kudu-bench options, see --help]
# Installs etcd (Debian's etcd-server) if missing, builds `kudu` and `kudu-bench` in release
# mode into ~/.cache/kudu-target-release (CI's debug cache is untouched), prints a table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh >/dev/null
if ! command -v etcd >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "installing Debian packages: etcd-server etcd-client"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq etcd-server etcd-client >/dev/null
    # The package starts a system etcd on the default ports; the benchmark runs its own.
    $sudo_cmd systemctl stop etcd 2>/dev/null || true
fi

export CARGO_TARGET_DIR="${KUDU_RELEASE_TARGET_DIR:-$HOME/.cache/kudu-target-release}"
source scripts/env.sh
cargo build --release --bin kudu --bin kudu-bench -p kudu -p kudu-bench
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg), $(etcd --version | head -1)"
"$CARGO_TARGET_DIR/release/kudu-bench" --kudu "$CARGO_TARGET_DIR/release/kudu" --etcd "$(command -v etcd)" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
