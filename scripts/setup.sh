#!/usr/bin/env bash
# Installs what a fresh machine needs beyond the Rust toolchain: a C/C++ toolchain and
# libclang for the bundled RocksDB, nss_wrapper for the local control plane's DNS, Chromium
# (headless, for the tests of the web pages), and the Python virtualenv with the real Helm
# library (helm-sdkpy), and protoc for the etcd client the side-by-side benchmarks build
# (kudu-bench). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(build-essential libclang-dev libnss-wrapper python3-venv chromium protobuf-compiler)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -x e2e/scripts/setup-venv.sh ] || [ -f e2e/scripts/setup-venv.sh ]; then
    bash e2e/scripts/setup-venv.sh
fi

command -v kubectl >/dev/null || echo "warning: kubectl not found; the e2e tests that drive kubectl will fail" >&2
