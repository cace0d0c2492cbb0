"""The ghz configs in loadtest/ghz stay in step with proto/chat.proto.

ghz itself cannot be installed on our machines, so this checks what can be checked without it:
the files parse, use only keys of ghz's config-file format, name a real RPC of the proto, and
their `data` decodes into that RPC's request message (what ghz does with protojson).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from chat_service.gen import chat_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]
GHZ_DIR = ROOT / "loadtest" / "ghz"
CONFIGS = sorted(GHZ_DIR.glob("*.json"))

# Keys of ghz's config file (runner.Config in github.com/bojand/ghz, JSON tags).
GHZ_KEYS = {
    "proto", "protoset", "call", "import-paths", "cacert", "cert", "key", "cname",
    "skip-verify", "insecure", "authority", "async", "rps", "load-schedule", "load-start",
    "load-end", "load-step", "load-step-duration", "load-max-duration", "concurrency",
    "concurrency-schedule", "concurrency-start", "concurrency-end", "concurrency-step",
    "concurrency-step-duration", "concurrency-max-duration", "total", "timeout", "duration",
    "max-duration", "duration-stop", "data", "data-file", "binary-file", "metadata",
    "metadata-file", "stream-interval", "stream-call-duration", "stream-call-count",
    "stream-dynamic-messages", "reflect-metadata", "output", "format", "skip-first",
    "count-errors", "connections", "connect-timeout", "keepalive", "enable-compression",
    "lb-strategy", "name", "tags", "cpus", "debug", "host",
}
DURATION_KEYS = {
    "timeout", "duration", "max-duration", "stream-interval", "stream-call-duration",
    "connect-timeout", "keepalive", "load-step-duration", "load-max-duration",
    "concurrency-step-duration", "concurrency-max-duration",
}
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
TEMPLATE = re.compile(r"\{\{[^}]*\}\}")
EXPECTED = {"SendMessage", "GetMessageHistory", "ListMyGroups", "Subscribe"}


def _method(call: str) -> MethodDescriptor:
    match = re.fullmatch(r"([\w.]+)[./](\w+)", call)
    assert match, f"call {call!r} is not 'package.Service.Method' or 'package.Service/Method'"
    service_name, method_name = match.groups()
    assert service_name == "chat.ChatService", service_name
    service = pb.DESCRIPTOR.services_by_name["ChatService"]
    assert service.full_name == service_name
    method = service.methods_by_name.get(method_name)
    assert method is not None, f"ChatService has no RPC {method_name}"
    return method


def _render(value: Any) -> Any:
    """Replace ghz call templates ({{.UUID}}, {{.RequestNumber}} ...) by sample text."""
    if isinstance(value, str):
        return TEMPLATE.sub("x", value)
    if isinstance(value, list):
        return [_render(v) for v in value]
    if isinstance(value, dict):
        return {k: _render(v) for k, v in value.items()}
    return value


def _load(path: Path) -> dict[str, Any]:
    config = json.loads(path.read_text())
    assert isinstance(config, dict)
    return config


def test_every_expected_rpc_has_a_config() -> None:
    calls = {_method(_load(p)["call"]).name for p in CONFIGS}
    assert calls >= EXPECTED


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_is_valid_for_ghz_and_the_proto(path: Path) -> None:
    config = _load(path)
    unknown = set(config) - GHZ_KEYS
    assert not unknown, f"not ghz config keys: {unknown}"
    assert (ROOT / config["proto"]).is_file(), "proto path is relative to the repo root"
    assert config["insecure"] is True
    assert re.fullmatch(r"[\w.-]+:\d+", config["host"])
    for key in DURATION_KEYS & set(config):
        assert GO_DURATION.match(config[key]), f"{key}={config[key]!r} is not a Go duration"
    for key in ("rps", "concurrency", "total", "connections"):
        if key in config:
            assert isinstance(config[key], int) and config[key] > 0, key
    assert "total" in config or "duration" in config
    if "total" in config and "concurrency" in config:
        assert config["total"] >= config["concurrency"], "ghz: total must be >= concurrency"
    metadata = config["metadata"]
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert metadata["authorization"] == "Bearer __TOKEN__"

    method = _method(config["call"])
    assert not method.client_streaming
    if method.server_streaming:
        assert "stream-call-duration" in config or "stream-call-count" in config, (
            "a server stream needs an end: stream-call-duration or stream-call-count"
        )
    request_class = GetMessageClass(method.input_type)
    request = json_format.ParseDict(_render(config["data"]), request_class())
    assert request.DESCRIPTOR.full_name == method.input_type.full_name
    if method.name == "SendMessage":
        assert isinstance(request, pb.SendMessageRequest)
        assert request.group_id > 0 and request.content
        # Each request needs its own idempotency key or ghz would post one message only.
        assert "{{" in config["data"]["client_msg_id"]


def test_readme_shows_every_config() -> None:
    readme = (GHZ_DIR / "README.md").read_text()
    for path in CONFIGS:
        assert f"loadtest/ghz/{path.name}" in readme, path.name
