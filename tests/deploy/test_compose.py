"""compose.yaml renders with podman-compose (the seed's `docker-compose up` promise)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def rendered(**env: str) -> dict[str, Any]:
    tool = Path(sys.executable).parent / "podman-compose"
    assert tool.exists(), "podman-compose missing: pip install -e '.[dev]'"
    # --dry-run: render only, no podman needed
    result = subprocess.run(
        [str(tool), "--dry-run", "-f", str(ROOT / "compose.yaml"), "config"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items()
                if k not in ("JWT_SECRET", "BACKEND_JWT_SECRET")}, **env},
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def test_compose_renders_with_the_services_of_the_plan() -> None:
    services = rendered()["services"]
    assert {"chat", "envoy", "postgres", "redis", "migrate"} <= set(services)
    chat = services["chat"]
    env = chat["environment"]
    assert env["DB_HOST"] == "postgres" and env["REDIS_HOST"] == "redis"
    assert env["GRPC_PORT"] == "50051"
    assert services["migrate"]["build"] == chat["build"] or services["migrate"].get(
        "image") == chat.get("image"), "migrations must run from the same image"
    volumes = " ".join(str(v) for v in services["envoy"].get("volumes", []))
    assert "deploy/envoy/envoy.yaml" in volumes


def test_compose_defaults_to_the_dev_secret_of_make_dev_and_chat_token() -> None:
    dev_secret = importlib.import_module("chat_devstack.tokens").DEV_JWT_SECRET
    services = rendered()["services"]
    assert services["chat"]["environment"]["JWT_SECRET"] == dev_secret
    assert services["migrate"]["environment"]["JWT_SECRET"] == dev_secret
    chosen = rendered(JWT_SECRET="laravel-secret")["services"]["chat"]["environment"]
    assert chosen["JWT_SECRET"] == "laravel-secret"


def test_compose_publishes_only_on_loopback() -> None:
    published = {
        name: service["ports"] for name, service in rendered()["services"].items()
        if service.get("ports")
    }
    assert published["envoy"] == ["127.0.0.1:8080:8080"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_the_backend_api_port_is_internal_only() -> None:
    """Envoy's chat_backend listener (deploy/envoy/envoy.yaml, port 8081) routes only
    chat.ChatBackend; compose exposes it to the containers of its network, never to the host."""
    tokens = importlib.import_module("chat_devstack.tokens")
    services = rendered()["services"]
    envoy = services["envoy"]
    assert [str(p) for p in envoy["expose"]] == ["8081"]
    assert not [p for p in envoy["ports"] if "8081" in str(p)]
    env = services["chat"]["environment"]
    assert env["BACKEND_JWT_SECRET"] == tokens.DEV_BACKEND_JWT_SECRET
    chosen = rendered(BACKEND_JWT_SECRET="b" * 40)["services"]["chat"]["environment"]
    assert chosen["BACKEND_JWT_SECRET"] == "b" * 40
    config = yaml.safe_load((ROOT / "deploy" / "envoy" / "envoy.yaml").read_text())
    (backend,) = [item for item in config["static_resources"]["listeners"]
                  if item["name"] == "chat_backend"]
    assert backend["address"]["socket_address"]["port_value"] == 8081
    hcm = backend["filter_chains"][0]["filters"][0]["typed_config"]
    (vhost,) = hcm["route_config"]["virtual_hosts"]
    assert {r["match"].get("prefix", r["match"].get("path")) for r in vhost["routes"]} == {
        "/chat.ChatBackend/", "/chat.ChatBackend/ExportUser"}
