"""Clients generated from the original plan's chat.proto keep working on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from grpc_tools import protoc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint

SEED_PROTO = Path(__file__).parent.parent / "seed_proto"


def _generate_seed_stubs(out: Path) -> None:
    code = protoc.main([
        "protoc", f"-I{SEED_PROTO}", f"--python_out={out}", f"--grpc_python_out={out}",
        str(SEED_PROTO / "chat.proto"),
    ])
    assert code == 0, "the seed chat.proto must compile unchanged"


def test_the_seed_proto_file_is_the_original_verbatim() -> None:
    plan = Path(__file__).resolve().parents[3] / "shared/seed/chat-microservice-plan.md"
    text = (SEED_PROTO / "chat.proto").read_text()
    assert "service ChatService" in text and "int64 before_id = 3; // For pagination" in text
    if plan.exists():  # the plan lives beside the repo on our machines; CI clones only the repo
        assert text in plan.read_text()


def test_seed_generated_client_drives_every_seed_rpc(
    stack: Cluster, tmp_path: Path, new_user_id: object
) -> None:
    _generate_seed_stubs(tmp_path)
    ids = [new_user_id() for _ in range(3)]  # type: ignore[operator]
    tokens = [mint(stack.jwt_secret, uid, name=f"seed{uid}") for uid in ids]
    args = [str(tmp_path), stack.gateway]
    for uid, tok in zip(ids, tokens, strict=True):
        args += [str(uid), tok]
    result = subprocess.run(
        [sys.executable, str(SEED_PROTO / "scenario.py"), *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    alice, bob, _carol = ids
    assert report["group"]["name"] == "seed group"
    assert report["group"]["created_by"] == alice
    assert report["group"]["member_ids"] == sorted([alice, bob])
    assert report["join"]["success"] is True
    assert report["members"] == sorted(ids)
    # Both streams carry all six messages, in the same order as history (seq order; the
    # two senders wrote concurrently, so that order is the server's, not the loop's).
    assert sorted(report["stream_order"]["alice"]) == report["texts"]
    assert report["stream_order"]["alice"] == report["stream_order"]["bob"] == report["history"]
    assert report["sender_saw_own_first_message"] is True
    assert report["typing"] is True
    assert report["history_has_more"] == [True, False]
    assert report["timestamps_ok"] is True
    assert report["leave"] is True
    assert report["members_after_leave"] == sorted([alice, bob])
    assert report["no_token"] == "UNAUTHENTICATED"
    assert report["streams_closed"] == ["OK", "OK"]
