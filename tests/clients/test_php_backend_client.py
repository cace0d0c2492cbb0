"""The Laravel backend's PHP client for chat.ChatBackend (clients/php: ChatBackendClient,
ChatBackendTokenIssuer and the Eloquent observers of the guide) against the real service,
through an Envoy listener with `backend_api` on, with Debian's PHP (as test_php_client.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from chat_devstack.cluster import Cluster
from tests.clients.support import REPO_ROOT, ensure_deps

SCENARIO = REPO_ROOT / "tests" / "clients" / "php" / "backend_scenario.php"


@pytest.fixture(scope="module")
def envoy_cluster() -> Iterator[Cluster]:
    ensure_deps("php")
    cluster = Cluster(pods=1, with_envoy=True, envoy_backend_api=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def run_scenario(
    cluster: Cluster, *, gateway: str | None = None, backend_url: str | None = None
) -> tuple[dict[str, Any], dict[str, int]]:
    """The scenario with users through `gateway` (default: the cluster's) and the backend
    client through `backend_url` (default: the same listener)."""
    ensure_deps("php")
    base = random.randint(10_000, 9_000_000) * 10
    ids = {"owner": base + 1, "ann": base + 2, "ben": base + 3}
    url = f"http://{gateway or cluster.gateway}"
    proc = subprocess.run(
        ["php", str(SCENARIO)],
        env={**os.environ, "GRPC_WEB_URL": url, "BACKEND_URL": backend_url or url,
             "JWT_SECRET": cluster.jwt_secret, "BACKEND_JWT_SECRET": cluster.backend_jwt_secret,
             "OWNER_ID": str(ids["owner"]), "ANN_ID": str(ids["ann"]),
             "BEN_ID": str(ids["ben"])},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"php scenario failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout), ids


def test_the_laravel_backend_drives_the_chat_through_the_php_client(
    envoy_cluster: Cluster,
) -> None:
    check_scenario(*run_scenario(envoy_cluster))


def check_scenario(out: dict[str, Any], ids: dict[str, int]) -> None:
    assert out["changed_again"] == [] and out["changed_custom"] == [ids["ann"]]
    assert sorted(out["added"]) == [ids["ben"]]  # Ann came with the team
    assert out["posted_again"]["id"] == out["posted_as_ann"]["id"]
    assert out["posted_again"]["duplicate"] is True
    assert (out["muted"]["kind"], out["muted"]["user_id"]) == ("MUTE", ids["ben"])
    assert [a["kind"] for a in out["log"]] == ["MUTE"]
    assert (out["banned"]["kind"], out["banned"]["group_id"]) == ("USER_BAN", 0)

    errors = out["errors"]
    assert errors["muted_ben_posts"]["class"] == "PermissionDeniedGrpcException"
    assert errors["banned_ben_reads"]["class"] == "PermissionDeniedGrpcException"
    assert errors["users_key_on_backend"]["class"] == "UnauthenticatedGrpcException"
    assert errors["too_many_users"]["class"] == "InvalidArgumentGrpcException"
    assert errors["history_after_delete"]["class"] == "NotFoundGrpcException"

    # Names came from the directory (nobody ever connected), the welcome from the observer.
    history = out["history"]
    assert history[0]["content"] == 'Olivia Owner created "Blue team"'
    assert history[1] == {**history[1], "type": "SYSTEM", "user_id": 0,
                          "content": "Welcome to Blue team!"}
    assert "System added Ben Member" in [m["content"] for m in history]
    acted = next(m for m in history if m["content"] == "posted by the app for Ann")
    assert (acted["user_id"], acted["user_name"]) == (ids["ann"], "Ann Member")
    assert history[-1]["content"] == "Deleted user left"  # Ben erased by the observer
    assert {m["id"]: m["name"] for m in out["members"]} == {
        ids["owner"]: "Olivia Owner", ids["ann"]: "Ann Member"}

    kinds = {r["type"] for r in out["export"]}
    assert {"profile", "membership", "message"} <= kinds
    profile = next(r for r in out["export"] if r["type"] == "profile")
    assert (profile["name"], profile["custom"]) == ("Ann Member", {"plan": "pro"})
    assert out["erased_again"] == {"groups_left": 0, "messages": 0, "attachments": 0}
