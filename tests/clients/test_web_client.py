"""The web client package (clients/web): generated code is fresh, TypeScript and Vue type-check,
the library builds for apps that bundle it (Laravel + Vite), its logic passes Node unit checks,
and Envoy's optional static route (the demo page) leaves the gRPC routes alone.

The browser scenario itself is test_browser_chat.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from chat_devstack import envoy_config
from chat_devstack.envoy_config import Upstream
from tests.clients.support import WEB_DIR, ensure_deps, run


def test_generated_typescript_is_fresh(tmp_path: Path) -> None:
    ensure_deps("web")
    run(["sh", "scripts/gen.sh", str(tmp_path)], WEB_DIR)
    fresh = (tmp_path / "chat_pb.ts").read_text()
    committed = (WEB_DIR / "src" / "gen" / "chat_pb.ts").read_text()
    assert fresh == committed, "clients/web/src/gen is stale: cd clients/web && npm run gen"


def test_typecheck_library_build_and_unit_checks() -> None:
    ensure_deps("web")
    run(["npm", "run", "typecheck"], WEB_DIR)
    run(["npm", "run", "build:lib"], WEB_DIR)
    lib = WEB_DIR / "dist-lib"
    js = (lib / "chat-web.js").read_text()
    assert (lib / "chat-web.css").stat().st_size > 500
    for name in ("ChatConnection", "GroupChat", "GroupList", "ChatService"):
        assert name in js
    # Peer/runtime dependencies stay external: the app's bundler provides one Vue.
    assert 'from "vue"' in js and 'from "@connectrpc/connect-web"' in js
    package: dict[str, Any] = json.loads((WEB_DIR / "package.json").read_text())
    assert package["exports"]["."]["import"] == "./dist-lib/chat-web.js"
    assert package["exports"]["./style.css"] == "./dist-lib/chat-web.css"
    out = run(["node", "--test", "test/unit.mjs"], WEB_DIR)
    assert "# fail 0" in out, out


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes: list[dict[str, Any]] = hcm["typed_config"]["route_config"]["virtual_hosts"][0][
        "routes"
    ]
    return routes


def test_envoy_static_route_keeps_grpc_routes(tmp_path: Path) -> None:
    pods = [Upstream("127.0.0.1", 50061)]
    plain: dict[str, Any] = json.loads(envoy_config.render(upstreams=pods))
    with_web: dict[str, Any] = json.loads(
        envoy_config.render(upstreams=pods, static_upstream=Upstream("127.0.0.1", 8000))
    )
    grpc_routes = [r for r in _routes(with_web) if r["name"] != "web_static"]
    assert grpc_routes == _routes(plain)
    (static,) = [r for r in _routes(with_web) if r["name"] == "web_static"]
    # Before the catch-all unary route, and only for requests that are not gRPC.
    names = [r["name"] for r in _routes(with_web)]
    assert names.index("web_static") == names.index("unary") - 1
    (matcher,) = static["match"]["headers"]
    assert matcher == {
        "name": "content-type",
        "string_match": {"prefix": "application/grpc"},
        "invert_match": True,
        "treat_missing_header_as_empty": True,
    }
    clusters = {c["name"]: c for c in with_web["static_resources"]["clusters"]}
    assert "typed_extension_protocol_options" not in clusters[envoy_config.STATIC_CLUSTER]

    config = tmp_path / "envoy.yaml"
    config.write_text(json.dumps(with_web))
    envoy = Path(sys.executable).parent / "envoy"
    proc = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
