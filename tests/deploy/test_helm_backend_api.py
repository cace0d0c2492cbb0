"""The chart's `backendApi` values (issue 15): BACKEND_JWT_SECRET reaches the chat pods from a
Secret, only when set; the chart's Envoy routes chat.ChatBackend only on its internal
listener, off by default (tests/deploy/test_helm_backend_gateway.py)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.deploy.test_helm_chart import JWT, RELEASE, documents, find, pod_spec, render_raw


def chat_env(values: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifests = render_raw(values)
    docs = documents(manifests)
    deployment = find(docs, "Deployment", RELEASE)
    container = pod_spec(deployment)["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    return env, docs


def test_no_backend_key_by_default() -> None:
    env, _ = chat_env(dict(JWT))
    assert "BACKEND_JWT_SECRET" not in env


def test_the_backend_secret_is_kept_in_the_charts_secret() -> None:
    env, docs = chat_env({**JWT, "backendApi": {"secret": "b" * 40}})
    ref = env["BACKEND_JWT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": RELEASE, "key": "backend-jwt-secret"}
    secret = find(docs, "Secret", RELEASE)
    assert base64.b64decode(secret["data"]["backend-jwt-secret"]).decode() == "b" * 40


def test_an_existing_secret_can_hold_it() -> None:
    env, docs = chat_env({**JWT, "backendApi": {"existingSecret": "laravel-backend",
                                                 "existingSecretKey": "key"}})
    assert env["BACKEND_JWT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "laravel-backend", "key": "key"}
    assert "backend-jwt-secret" not in find(docs, "Secret", RELEASE)["data"]


@pytest.mark.parametrize("values", [dict(JWT), {**JWT, "backendApi": {"secret": "b" * 40}}])
def test_the_charts_envoy_does_not_route_the_backend_api_by_default(values: dict[str, Any]) -> None:
    manifests = render_raw(values)
    envoy = "".join(text for path, text in manifests.items() if "envoy-configmap" in path)
    assert "chat.ChatService" in envoy
    assert "chat.ChatBackend" not in envoy


def test_the_envoy_generator_routes_the_backend_api_only_behind_its_switch() -> None:
    from chat_devstack import envoy_config

    off = envoy_config.render(dns_name="chat")
    on = envoy_config.render(dns_name="chat", backend_api=True)
    assert "/chat.ChatBackend/" not in off
    assert '"prefix": "/chat.ChatBackend/"' in on
    assert '"path": "/chat.ChatBackend/ExportUser"' in on
