#!/usr/bin/env bash
# Creates e2e/.venv (idempotent) with helm-sdkpy, the real Helm library the e2e tests drive.
# Usage: e2e/scripts/setup-venv.sh [VENV_DIR]   (default: e2e/.venv; tests also honour E2E_VENV)
set -euo pipefail

HELM_SDKPY_VERSION="${HELM_SDKPY_VERSION:-0.1.32}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${E2E_VENV:-$here/../.venv}}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
if "$venv/bin/python" -c "import helm_sdkpy" 2>/dev/null \
    && [ "$("$venv/bin/python" -m pip show helm-sdkpy 2>/dev/null | sed -n 's/^Version: //p')" = "$HELM_SDKPY_VERSION" ]; then
    echo "helm-sdkpy $HELM_SDKPY_VERSION already installed in $venv"
    exit 0
fi
# helm-sdkpy declares Python >= 3.12 but works on 3.11 (see the e2e README).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --ignore-requires-python "helm-sdkpy==$HELM_SDKPY_VERSION"
"$venv/bin/python" -c "import helm_sdkpy; print('helm-sdkpy ready in $venv')"
