"""Runs one Helm action through helm-sdkpy (the real Helm library) and prints JSON.

Usage: python driver.py '<json request>'
Request: {"kubeconfig": PATH, "namespace": NS, "action": "install"|"upgrade"|"uninstall"|"status"|"list",
          "release": NAME, "chart": PATH, "values": {...}, "options": {...}}
Prints {"ok": true, "result": ...} or {"ok": false, "error": "..."}; exit code 0 either way.
"""

import asyncio
import json
import sys

import helm_sdkpy


async def run(req):
    config = helm_sdkpy.Configuration(namespace=req.get("namespace", "default"), kubeconfig=req["kubeconfig"])
    action = req["action"]
    opts = req.get("options", {})
    if action == "install":
        return await helm_sdkpy.Install(config).run(req["release"], req["chart"], values=req.get("values"), **opts)
    if action == "upgrade":
        return await helm_sdkpy.Upgrade(config).run(req["release"], req["chart"], values=req.get("values"), **opts)
    if action == "uninstall":
        return await helm_sdkpy.Uninstall(config).run(req["release"], **opts)
    if action == "status":
        return await helm_sdkpy.Status(config).run(req["release"])
    if action == "list":
        return await helm_sdkpy.List(config).run(**opts)
    raise ValueError(f"unknown action {action!r}")


def main():
    req = json.loads(sys.argv[1])
    try:
        result = asyncio.run(run(req))
        print(json.dumps({"ok": True, "result": result}, default=str))
    except Exception as e:  # report every Helm failure to the Rust test
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
