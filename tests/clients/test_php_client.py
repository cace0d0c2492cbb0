"""The Laravel-side PHP client (clients/php) against the real service through Envoy.

PHP has no gRPC extension here, so clients/php calls Envoy's gRPC-Web endpoint with plain
HTTP (GrpcWebTransport; curl and PHP-streams variants). tests/clients/php/scenario.php mints an
HS256 token the way tymon/jwt-auth does, creates a group, sends (idempotently), reads history,
maps error statuses to exceptions and drives the Laravel controller (with minimal stand-ins for
Request/JsonResponse). This test checks the results and the server's own view from Python.

Needs Debian's php8.2-cli, php8.2-curl, php-google-protobuf and protobuf-compiler; they are
installed by clients/web/scripts/ensure-deps.sh when missing (a failure fails the test).
"""

from __future__ import annotations

import filecmp
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import PHP_DIR, REPO_ROOT, bearer, ensure_deps, history, run, stub

SCENARIO = REPO_ROOT / "tests" / "clients" / "php" / "scenario.php"


@pytest.fixture(scope="module")
def envoy_cluster() -> Iterator[Cluster]:
    ensure_deps("php")
    cluster = Cluster(pods=1, with_envoy=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_generated_php_is_fresh(tmp_path: Path) -> None:
    ensure_deps("php")
    run(["sh", str(PHP_DIR / "gen.sh"), str(tmp_path)], PHP_DIR)
    committed = PHP_DIR / "generated"
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.php"))
    assert fresh == sorted(p.relative_to(committed) for p in committed.rglob("*.php")), (
        "clients/php/generated is stale: run clients/php/gen.sh"
    )
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, committed / p, shallow=False)]
    assert not stale, f"clients/php/generated is stale ({stale[:5]}): run clients/php/gen.sh"


def test_php_sources_parse() -> None:
    ensure_deps("php")
    files = sorted((PHP_DIR / "app").rglob("*.php")) + sorted(SCENARIO.parent.glob("*.php"))
    assert len(files) >= 10
    for path in files:
        run(["php", "-l", str(path)], PHP_DIR)


def _scenario(cluster: Cluster, http_client: str) -> tuple[dict[str, Any], dict[str, int]]:
    base = random.randint(10_000, 9_000_000) * 10
    ids = {"alice": base + 1, "bob": base + 2, "carol": base + 3}
    channel, chat = stub(cluster.gateway)
    with channel:  # let the service learn Bob's name
        chat.ListMyGroups(
            pb.ListMyGroupsRequest(),
            metadata=bearer(mint(cluster.jwt_secret, ids["bob"], name="Bob")),
            timeout=10,
        )
    proc = subprocess.run(
        ["php", str(SCENARIO)],
        env={
            **os.environ,
            "GRPC_WEB_URL": f"http://{cluster.gateway}",
            "JWT_SECRET": cluster.jwt_secret,
            "ALICE_ID": str(ids["alice"]),
            "BOB_ID": str(ids["bob"]),
            "CAROL_ID": str(ids["carol"]),
            "HTTP_CLIENT": http_client,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"php scenario failed:\n{proc.stdout}\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result, ids


@pytest.mark.parametrize("http_client", ["curl", "stream"])
def test_php_client_through_grpc_web(envoy_cluster: Cluster, http_client: str) -> None:
    out, ids = _scenario(envoy_cluster, http_client)
    assert out["http_client"].endswith("CurlHttpClient" if http_client == "curl" else "Stream"
                                       "HttpClient")

    # The PHP-minted token is a tymon-style HS256 JWT the service accepted.
    claims = jwt.decode(out["alice_token"], envoy_cluster.jwt_secret, algorithms=["HS256"])
    assert claims["sub"] == str(ids["alice"]) and claims["name"] == "Alice (PHP)"
    assert jwt.get_unverified_header(out["alice_token"]) == {"typ": "JWT", "alg": "HS256"}

    group = out["group"]
    assert group["name"] == "php room" and group["created_by"] == ids["alice"]
    assert sorted(group["member_ids"]) == sorted([ids["alice"], ids["bob"]])
    assert out["first"]["id"] == out["again"]["id"], "same client_msg_id must not post twice"
    assert out["first"]["user_id"] == ids["alice"]
    contents = [m["content"] for m in out["history"]["messages"]]
    assert contents[-2:] == ["hello from PHP", "ünïcödé ✓ from PHP"]
    assert group["id"] in out["my_groups"]
    assert {m["id"] for m in out["members"]} == {ids["alice"], ids["bob"]}

    # threads, search, pins, mark-unread
    parent_id = out["thread"]["parent"]["id"]
    assert out["reply"]["thread_parent_id"] == parent_id
    assert out["thread"]["parent"]["reply_count"] == 1
    assert [m["id"] for m in out["thread"]["replies"]] == [out["reply"]["id"]]
    assert out["thread"]["unread_count"] == 1
    assert [g["thread_unread_count"] for g in out["thread_unread_group"]
            if g["id"] == group["id"]] == [1]
    assert out["thread_read"] == {"read_seq": out["reply"]["seq"], "unread_count": 0,
                                  "group_thread_unread": 0}
    hits = out["search"]["hits"]
    assert sorted(h["message"]["id"] for h in hits) == sorted([parent_id, out["reply"]["id"]])
    for hit in hits:
        (offset, length), = hit["highlights"]
        assert hit["snippet"][offset:offset + length].startswith("php")
    assert out["pinned_one"]["pinned_by"] == ids["alice"]
    assert out["pinned"] == [parent_id] and out["pinned_after_unpin"] == []
    first_seq = out["first"]["seq"]
    assert out["read"]["unread_count"] == 0
    assert out["unread"]["read_seq"] == first_seq - 1
    # Alice's messages from `first` on: it, the unicode one and the thread's parent
    assert (out["unread"]["unread_count"], out["unread"]["mention_count"]) == (3, 0)

    errors = out["errors"]
    assert errors["pin_as_member"]["class"] == "PermissionDeniedGrpcException"
    assert errors["search_empty"]["class"] == "InvalidArgumentGrpcException"
    assert errors["empty_message"]["class"] == "InvalidArgumentGrpcException"
    assert errors["empty_message"]["http"] == 422
    assert errors["not_a_member"]["class"] == "PermissionDeniedGrpcException"
    assert errors["bad_signature"]["class"] == "UnauthenticatedGrpcException"
    assert errors["unreachable"]["class"] == "UnavailableGrpcException"

    # The server's view, from Python as Bob.
    bob = mint(envoy_cluster.jwt_secret, ids["bob"], name="Bob")
    seen = history(envoy_cluster.gateway, bob, group["id"])
    texts = [m.content for m in seen if m.type == pb.TEXT]
    # the thread's parent is in the timeline, its (thread-only) reply is not
    assert texts == [
        "hello from PHP", "ünïcödé ✓ from PHP", f"where is the php{group['id']}needle?"
    ]
    assert {m.user_name for m in seen if m.type == pb.TEXT} == {"Alice (PHP)"}

    ctl = out["controller"]
    status, body = ctl["created"]
    assert status == 201
    created = body["data"]
    assert created["created_by"] == ids["carol"], "identity comes from the user, not the request"
    assert sorted(created["member_ids"]) == sorted([ids["carol"], ids["alice"]])
    assert ctl["sent"][0] == 201 and ctl["sent"][1]["data"]["user_id"] == ids["carol"]
    assert ctl["resent"][1]["data"]["id"] == ctl["sent"][1]["data"]["id"]
    assert ctl["history"][0] == 200
    assert [m["content"] for m in ctl["history"][1]["data"]["messages"] if m["type"] == "TEXT"] == [
        "via the controller"
    ]
    assert ctl["denied"][0] == 403 and ctl["denied"][1]["status"] == "PERMISSION_DENIED"
