"""The `chat` terminal client (service/chat_cli) against the real service (`stack` fixture).

Runs the installed console script as a subprocess, the way operators use it.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.clients.support import bearer, png, stub


def _chat_binary() -> str:
    beside = Path(sys.executable).parent / "chat"
    found = str(beside) if beside.exists() else shutil.which("chat")
    if found is None:
        pytest.fail("the `chat` console script is not installed: pip install -e .", pytrace=False)
    return found


CHAT = _chat_binary()


def chat(
    stack: Cluster, token: str, *args: str, expect: int = 0
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHAT_SERVER": stack.gateway, "CHAT_TOKEN": token}
    proc = subprocess.run(
        [CHAT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _ids() -> Iterator[int]:
    base = random.randint(10_000, 9_000_000) * 10
    yield from range(base, base + 10)


@pytest.fixture
def people(stack: Cluster) -> dict[str, tuple[int, str]]:
    ids = _ids()
    out = {}
    for name in ("Alice", "Bob", "Carol"):
        uid = next(ids)
        out[name] = (uid, mint(stack.jwt_secret, uid, name=name))
        chat(stack, out[name][1], "groups")  # the service learns the name from the token
    return out


def _created_id(proc: subprocess.CompletedProcess[str]) -> int:
    # "created group 12 'name' with 2 members"
    return int(proc.stdout.split()[2])


def test_token_is_a_valid_dev_jwt() -> None:
    proc = subprocess.run(
        [CHAT, "token", "--user", "42", "--name", "Zed", "--ttl", "600"],
        env={**os.environ, "JWT_SECRET": "s3cret-for-the-cli-test-0123456789"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    claims = jwt.decode(
        proc.stdout.strip(), "s3cret-for-the-cli-test-0123456789", algorithms=["HS256"]
    )
    assert claims["sub"] == "42"
    assert claims["name"] == "Zed"
    assert 590 <= claims["exp"] - claims["iat"] <= 600


def test_groups_send_history_join_leave(stack: Cluster, people: dict[str, tuple[int, str]]) -> None:
    (_, alice), (bob_id, bob), (_, carol) = people["Alice"], people["Bob"], people["Carol"]
    group = _created_id(chat(stack, alice, "create", "cli room", "--member", str(bob_id)))

    chat(stack, alice, "send", str(group), "hello", "from", "the", "terminal")
    listed = chat(stack, bob, "groups").stdout
    row = next(line for line in listed.splitlines() if line.split()[0] == str(group))
    assert "cli room" in row and int(row.split()[-3]) >= 1, listed  # unread: Alice's message

    lines = chat(stack, bob, "history", str(group)).stdout.splitlines()
    assert lines[-1].endswith("Alice: hello from the terminal"), lines

    as_json = chat(stack, bob, "--json", "history", str(group), "--limit", "1").stdout
    (message,) = [json.loads(line) for line in as_json.splitlines()]
    assert message["content"] == "hello from the terminal"
    assert message["client_msg_id"]  # the CLI always sends an idempotency key

    # The same client_msg_id twice stores one message.
    for _ in range(2):
        chat(stack, alice, "send", str(group), "once", "--client-msg-id", f"cli-{group}-once")
    contents = chat(stack, alice, "history", str(group), "--limit", "50").stdout
    assert contents.count("Alice: once") == 1

    chat(stack, carol, "join", str(group))
    members = chat(stack, alice, "members", str(group)).stdout
    assert "Carol" in members and "owner" in members
    chat(stack, carol, "leave", str(group))
    denied = chat(stack, carol, "send", str(group), "let me in", expect=1)
    assert "PERMISSION_DENIED" in denied.stderr

    missing = subprocess.run(
        [CHAT, "groups"],
        env={k: v for k, v in os.environ.items() if k != "CHAT_TOKEN"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2 and "no token" in missing.stderr


def _reader(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _expect(lines: queue.Queue[str], needle: str, seen: list[str], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} in:\n" + "\n".join(seen))


def test_tail_shows_messages_typing_and_receipts(
    stack: Cluster, people: dict[str, tuple[int, str]]
) -> None:
    (alice_id, alice), (bob_id, bob) = people["Alice"], people["Bob"]
    group = _created_id(chat(stack, alice, "create", "tail room", "--member", str(bob_id)))
    chat(stack, alice, "send", str(group), "before the tail")

    env = {**os.environ, "CHAT_SERVER": stack.gateway, "CHAT_TOKEN": bob}
    tail = subprocess.Popen(
        [CHAT, "tail", str(group), "--last", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _reader(tail)
        _expect(lines, "-- tailing group", seen)
        _expect(lines, "Alice: before the tail", seen)  # --last 1 replays it

        chat(stack, alice, "send", str(group), "live from the terminal")
        _expect(lines, "Alice: live from the terminal", seen)

        channel, stub_ = stub(stack.gateway)
        with channel:
            for typing in (True, False):
                request = pb.TypingRequest(group_id=group, is_typing=typing)
                stub_.SendTypingIndicator(request, metadata=bearer(alice), timeout=10)
                if typing:
                    _expect(lines, "(Alice is typing…)", seen)
            _expect(lines, "(nobody is typing)", seen)
            stub_.MarkRead(pb.MarkReadRequest(group_id=group), metadata=bearer(bob), timeout=10)
            _expect(lines, "✓ Bob read up to #", seen)
        assert alice_id != bob_id

        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=10) == 0
        _expect(lines, "-- stopped --", seen, timeout=5)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()


def test_upload_posts_an_image(
    stack: Cluster, people: dict[str, tuple[int, str]], tmp_path: Path
) -> None:
    (_, alice), (bob_id, bob) = people["Alice"], people["Bob"]
    group = _created_id(chat(stack, alice, "create", "pictures", "--member", str(bob_id)))
    picture = tmp_path / "picture.png"
    picture.write_bytes(png())
    # A small chunk size forces several offset-checked UploadChunk calls.
    sent = chat(
        stack, alice, "upload", str(group), str(picture), "--caption", "a picture",
        "--chunk-size", "4096", "--quiet",
    )  # fmt: skip
    assert "[image: picture.png 96x64" in sent.stdout, sent.stdout
    history = chat(stack, bob, "history", str(group)).stdout.splitlines()
    assert "[image: picture.png 96x64" in history[-1] and "a picture" in history[-1], history


def test_tail_names_members_once_known_and_prints_a_membership_change_once(
    stack: Cluster, people: dict[str, tuple[int, str]]
) -> None:
    (_, alice), (bob_id, bob), (_, carol) = people["Alice"], people["Bob"], people["Carol"]
    # Dave has never called the service: it does not know his name yet.
    dave_id = max(uid for uid, _ in people.values()) + 1
    dave = mint(stack.jwt_secret, dave_id, name="Dave")
    members = ("--member", str(bob_id), "--member", str(dave_id))
    group = _created_id(chat(stack, alice, "create", "names room", *members))
    assert "Dave" not in chat(stack, alice, "members", str(group)).stdout

    env = {**os.environ, "CHAT_SERVER": stack.gateway, "CHAT_TOKEN": bob}
    tail = subprocess.Popen(
        [CHAT, "tail", str(group)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _reader(tail)
        _expect(lines, "-- tailing group", seen)
        channel, stub_ = stub(stack.gateway)
        with channel:  # Dave's first call: the service learns his name from his token
            request = pb.TypingRequest(group_id=group, is_typing=True)
            stub_.SendTypingIndicator(request, metadata=bearer(dave), timeout=10)
        _expect(lines, "(Dave is typing…)", seen)
        assert not any(f"user {dave_id}" in line for line in seen), seen

        chat(stack, carol, "join", str(group))
        chat(stack, alice, "send", str(group), "after the join")
        _expect(lines, "Alice: after the join", seen)
        joined = [line for line in seen if "Carol" in line and "joined" in line]
        assert len(joined) == 1, seen

        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=10) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()


def test_search_thread_and_reply(stack: Cluster, people: dict[str, tuple[int, str]]) -> None:
    (_, alice), (bob_id, bob) = people["Alice"], people["Bob"]
    group = _created_id(chat(stack, alice, "create", "cli threads", "--member", str(bob_id)))
    word = f"zq{random.randint(10**8, 10**9)}"
    sent = chat(stack, alice, "--json", "send", str(group), f"where is the {word} file?")
    parent = json.loads(sent.stdout)["id"]

    replied = chat(stack, bob, "reply", str(parent), "in", "the", word, "folder")
    assert f"in thread {parent}" in replied.stdout
    chat(stack, bob, "reply", str(parent), "shown", "in", "the", "group", "--also-in-group")
    shown = chat(stack, alice, "thread", str(parent), "--mark-read").stdout.splitlines()
    assert shown[0].endswith(f"[2 replies: chat thread {parent}]"), shown
    assert shown[1].startswith("  [#") and "Bob: (in thread" in shown[1]
    assert shown[1].endswith(f"in the {word} folder") and "(2 unread)" in shown[-1]
    assert "unread" not in chat(stack, alice, "thread", str(parent)).stdout  # marked read
    history = chat(stack, alice, "history", str(group)).stdout
    assert "shown in the group" in history and "folder" not in history

    found = chat(stack, bob, "search", word).stdout.splitlines()
    assert len(found) == 2 and all(f"*{word}*" in line for line in found), found
    assert any(f"in thread {parent}" in line for line in found)
    assert chat(stack, bob, "search", word, "--group", str(group), "--limit", "1").stdout \
        .splitlines()[-1].startswith("(more: chat search ")
    assert chat(stack, bob, "search", "nothing" + word).stdout == "no messages found\n"
    as_json = chat(stack, bob, "--json", "search", word).stdout.splitlines()
    assert {json.loads(line)["message"]["group_id"] for line in as_json} == {str(group)}
