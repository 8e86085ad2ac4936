#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what is missing, builds
# once, then runs unit, storage-suite, multi-process and end-to-end tests, then lints the
# Helm charts (helm-sdkpy) and the code (clippy, warnings are errors).
# KUDU_STRESS_SECS sets the stress test's duration (default 45 s).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/env.sh

bash scripts/setup.sh
started=$(date +%s)
cargo build --workspace --all-targets
echo "build: $(( $(date +%s) - started )) s"

# The operator gets the client from the kudu-client crate and must never compile the
# servers' storage or Raft.
operator_tree=$(cargo tree -p kudu-operator -e normal)
if grep -E "rocksdb|openraft" <<<"$operator_tree" >&2; then
    echo "error: kudu-operator depends on RocksDB or openraft (lines above); it must reach the" \
        "masters through the kudu-client crate only, never the kudu package" >&2
    exit 1
fi
echo "operator dependencies: no RocksDB, no openraft"

started=$(date +%s)
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --success-output never --failure-output final
else
    cargo test --workspace --no-fail-fast
fi
echo "tests: $(( $(date +%s) - started )) s"

# Lints: the charts through the real Helm library, formatting, and clippy on every target.
for chart in charts/kudu-operator charts/kudu-cluster; do
    e2e/.venv/bin/python scripts/helm-lint.py "$chart" >/dev/null
done
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
echo "lints passed"
