"""Lints a chart with the real Helm library (helm-sdkpy); exits non-zero on any error.

Usage: python scripts/helm-lint.py CHART_DIR
"""

import asyncio
import json
import sys

import helm_sdkpy


def main() -> int:
    chart = sys.argv[1]
    config = helm_sdkpy.Configuration(namespace="default")
    try:
        result = asyncio.run(helm_sdkpy.Lint(config).run(chart))
    except helm_sdkpy.HelmError as e:
        print(f"helm lint {chart}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    # Helm's severities: 1 info, 2 warning, 3 error.
    messages = result.get("Messages") or []
    failed = (result.get("Errors") or []) + [m for m in messages if int(m.get("Severity", 0)) >= 3]
    if failed:
        print(f"helm lint {chart}: {len(failed)} error(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
