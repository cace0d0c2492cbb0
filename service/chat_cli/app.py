"""`chat`: a terminal client for chat.ChatService.

  chat token --user 1 --name Alice        mint a dev token (HS256 with $JWT_SECRET)
  chat token --backend                    a backend token for chat.ChatBackend ($BACKEND_JWT_SECRET)
  chat groups                             my groups with unread counts
  chat create NAME [--member ID ...]      create a group (I am its owner)
  chat join GROUP | chat leave GROUP
  chat members GROUP
  chat send GROUP TEXT                    post (idempotent: retried with one client_msg_id)
  chat history GROUP [--limit N]          the newest N messages, oldest first
  chat search WORDS [--group G]           search my groups (matches between *stars*)
  chat thread MESSAGE_ID                  a message and its thread's replies
  chat reply MESSAGE_ID TEXT              reply in the thread (--also-in-group: timeline too)
  chat tail GROUP                         live: messages, typing, receipts, joins/leaves once
  chat upload GROUP FILE [--caption T]    chunked upload, then an IMAGE/FILE message

The server is --server or $CHAT_SERVER (default 127.0.0.1:50051: a pod or Envoy), the token
--token or $CHAT_TOKEN.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import random
import shlex
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

T = TypeVar("T")

DEFAULT_SERVER = "127.0.0.1:50051"
CHUNK_BYTES = 256 * 1024  # the server refuses chunks above 1 MiB
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class CliError(Exception):
    """A problem to report in one line (exit status 1)."""


# ---- connection -------------------------------------------------------------------------------


class Session:
    """One channel and token; every call carries `authorization: Bearer <token>`."""

    def __init__(self, server: str, token: str, *, tls: bool = False, timeout: float = 15.0):
        if not token:
            raise CliError("no token: pass --token or set CHAT_TOKEN (try: chat token --user 1)")
        self.server = server
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
        self.channel = (
            grpc.secure_channel(server, grpc.ssl_channel_credentials(), options=options)
            if tls
            else grpc.insecure_channel(server, options=options)
        )
        self.stub = pb_grpc.ChatServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),)

    def close(self) -> None:
        self.channel.close()

    def call(self, method: Callable[..., T], request: Message, *, retries: int = 0) -> T:
        """A unary call; transient failures are retried `retries` times with backoff."""
        for attempt in range(retries + 1):
            try:
                return method(request, metadata=self.metadata, timeout=self.timeout)
            except grpc.RpcError as exc:
                if attempt >= retries or _code(exc) not in TRANSIENT:
                    raise
                time.sleep(min(3.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    code = getattr(exc, "code", None)
    return code() if callable(code) else None


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    return str(details()) if callable(details) else str(exc)


# ---- formatting -------------------------------------------------------------------------------


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S") if ms else "--:--:--"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def format_message(m: pb.MessageResponse, names: dict[int, str] | None = None) -> str:
    who = m.user_name or (names or {}).get(m.user_id) or f"user {m.user_id}"
    head = f"[#{m.seq} {_clock(m.timestamp_ms)}]"
    if m.type == pb.SYSTEM:
        return f"{head} * {m.content}"
    if m.deleted:
        return f"{head} {who}: (deleted)"
    parts = [f"{head} {who}:"]
    if m.HasField("attachment") and m.attachment.id:
        a = m.attachment
        kind = "image" if m.type == pb.IMAGE else "file"
        dims = f" {a.width}x{a.height}" if a.width else ""
        parts.append(f"[{kind}: {a.file_name}{dims}, {_size(a.size)}, id {a.id}]")
    if m.content:
        parts.append(m.content)
    if m.edited_at_ms:
        parts.append("(edited)")
    if m.thread_parent_id:
        parts.insert(1, f"(in thread {m.thread_parent_id})")
    if m.reply_count:
        parts.append(f"[{m.reply_count} repl{'y' if m.reply_count == 1 else 'ies'}: "
                     f"chat thread {m.id}]")
    if m.pinned_by:
        parts.append("(pinned)")
    reactions = " ".join(f"{r.emoji} {r.count}" for r in m.reactions if r.count)
    if reactions:
        parts.append(f"  {reactions}")
    return " ".join(parts)


def _typing_line(ids: Sequence[int], me: int, names: dict[int, str]) -> str:
    who = [names.get(i, f"user {i}") for i in ids if i != me]
    if not who:
        return "(nobody is typing)"
    if len(who) == 1:
        return f"({who[0]} is typing…)"
    return f"({', '.join(who)} are typing…)"


def _emit_json(message: Message, out: TextIO) -> None:
    out.write(json.dumps(MessageToDict(message, preserving_proto_field_name=True)) + "\n")


# ---- commands ---------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace, out: TextIO) -> int:
    from chat_devstack.tokens import DEV_JWT_SECRET, mint

    if args.backend:  # a backend token for chat.ChatBackend (issue 15)
        from chat_devstack.tokens import DEV_BACKEND_JWT_SECRET, mint_backend

        key = args.secret or os.environ.get("BACKEND_JWT_SECRET", "") or DEV_BACKEND_JWT_SECRET
        out.write(mint_backend(key, ttl=min(args.ttl, 3600)) + "\n")
        return 0
    secret = args.secret or os.environ.get("JWT_SECRET", "")
    if not secret:
        print("chat: JWT_SECRET is not set; using the development secret", file=sys.stderr)
        secret = DEV_JWT_SECRET
    out.write(mint(secret, args.user, name=args.name, ttl=args.ttl) + "\n")
    return 0


def cmd_groups(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    groups = s.call(s.stub.ListMyGroups, pb.ListMyGroupsRequest()).groups
    if args.json:
        for g in groups:
            _emit_json(g, out)
        return 0
    if not groups:
        out.write("no groups\n")
        return 0
    out.write(f"{'ID':>8}  {'NAME':<24} {'MEMBERS':>7} {'UNREAD':>6} {'@':>3}  ROLE\n")
    for g in groups:
        role = pb.MemberRole.Name(g.my_role).removeprefix("ROLE_").lower()
        muted = " (muted)" if g.muted else ""
        out.write(
            f"{g.id:>8}  {g.name[:24]:<24} {g.member_count:>7} {g.unread_count:>6} "
            f"{g.mention_count:>3}  {role}{muted}\n"
        )
    return 0


def cmd_create(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    g = s.call(
        s.stub.CreateGroup,
        pb.CreateGroupRequest(
            name=args.name,
            description=args.description,
            member_ids=args.member,
            invite_only=args.invite_only,
        ),
    )
    if args.json:
        _emit_json(g, out)
    else:
        out.write(f"created group {g.id} {g.name!r} with {g.member_count} members\n")
    return 0


def cmd_join(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    r = s.call(s.stub.JoinGroup, pb.JoinGroupRequest(group_id=args.group, user_id=args.user))
    out.write(f"joined group {args.group}{': ' + r.message if r.message else ''}\n")
    return 0


def cmd_leave(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    r = s.call(s.stub.LeaveGroup, pb.LeaveGroupRequest(group_id=args.group, user_id=args.user))
    out.write(f"left group {args.group}{': ' + r.message if r.message else ''}\n")
    return 0


def cmd_members(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    members = s.call(s.stub.GetGroupMembers, pb.GetGroupMembersRequest(group_id=args.group))
    for u in members.members:
        role = pb.MemberRole.Name(u.role).removeprefix("ROLE_").lower()
        online = "online" if u.online else "offline"
        out.write(f"{u.id:>8}  {u.name or '-':<20} {role:<7} {online}\n")
    return 0


def _text(args: argparse.Namespace) -> str:
    """The message words of the command line; a lone '-' reads the text from stdin."""
    text = " ".join(args.text)
    return sys.stdin.read().rstrip("\n") if text == "-" else text


def cmd_send(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    text = _text(args)
    request = pb.SendMessageRequest(
        group_id=args.group,
        content=text,
        client_msg_id=args.client_msg_id or str(uuid.uuid4()),
        reply_to_id=args.reply_to,
    )
    m = s.call(s.stub.SendMessage, request, retries=5)
    if args.json:
        _emit_json(m, out)
    else:
        out.write(f"sent #{m.seq} (id {m.id})\n")
    return 0


def cmd_history(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    page = s.call(
        s.stub.GetMessageHistory,
        pb.GetHistoryRequest(group_id=args.group, limit=args.limit, before_id=args.before),
    )
    for m in page.messages:
        if args.json:
            _emit_json(m, out)
        else:
            out.write(format_message(m) + "\n")
    if page.has_more and not args.json and page.messages:
        out.write(f"(older: chat history {args.group} --before {page.messages[0].id})\n")
    return 0


def marked_snippet(hit: pb.SearchHit) -> str:
    """The snippet with each highlight between '*'."""
    text, out, at = hit.snippet, [], 0
    for h in sorted(hit.highlights, key=lambda h: h.offset):
        out += [text[at:h.offset], "*", text[h.offset:h.offset + h.length], "*"]
        at = h.offset + h.length
    return "".join([*out, text[at:]])


def cmd_search(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    query = " ".join(args.query)
    reply = s.call(s.stub.SearchMessages, pb.SearchMessagesRequest(
        query=query, group_id=args.group, limit=args.limit, page_token=args.page))
    for hit in reply.hits:
        if args.json:
            _emit_json(hit, out)
            continue
        m = hit.message
        who = m.user_name or f"user {m.user_id}"
        where = f"group {m.group_id} #{m.seq}" + (
            f" in thread {m.thread_parent_id}" if m.thread_parent_id else "")
        out.write(f"[{where} {_clock(m.timestamp_ms)}] {who}: {marked_snippet(hit)}"
                  f"  (id {m.id})\n")
    if not reply.hits and not args.json:
        out.write("no messages found\n")
    if reply.next_page_token and not args.json:
        out.write(f"(more: chat search {shlex.quote(query)} --page {reply.next_page_token}"
                  f"{f' --group {args.group}' if args.group else ''})\n")
    return 0


def cmd_thread(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    page = s.call(s.stub.GetThread, pb.GetThreadRequest(
        parent_id=args.parent, after_seq=args.after, limit=args.limit))
    if args.json:
        _emit_json(page, out)
        return 0
    out.write(format_message(page.parent) + "\n")
    for m in page.replies:
        out.write("  " + format_message(m) + "\n")
    if page.has_more and page.replies:
        out.write(f"  (more: chat thread {page.parent.id} --after {page.replies[-1].seq})\n")
    if page.unread_count:
        out.write(f"  ({page.unread_count} unread)\n")
    if args.mark_read:
        s.call(s.stub.MarkThreadRead, pb.MarkThreadReadRequest(parent_id=page.parent.id))
    return 0


def cmd_reply(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    text = _text(args)
    request = pb.ThreadReplyRequest(
        parent_id=args.parent, content=text, also_in_group=args.also_in_group,
        client_msg_id=args.client_msg_id or str(uuid.uuid4()),
    )
    m = s.call(s.stub.ReplyInThread, request, retries=5)
    if args.json:
        _emit_json(m, out)
    else:
        out.write(f"replied #{m.seq} (id {m.id}) in thread {m.thread_parent_id}\n")
    return 0


def cmd_upload(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.file)
    data = path.read_bytes()
    content_type = args.content_type or mimetypes.guess_type(path.name)[0]
    status = s.call(
        s.stub.StartUpload,
        pb.StartUploadRequest(
            group_id=args.group,
            file_name=path.name,
            content_type=content_type or "application/octet-stream",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        ),
        retries=3,
    )
    upload_id = status.upload_id
    failures = 0
    while not status.complete:
        offset = status.received_bytes
        if offset >= len(data):
            raise CliError(f"upload {upload_id}: all bytes sent but the server says incomplete")
        chunk = data[offset : offset + args.chunk_size]
        try:
            status = s.call(
                s.stub.UploadChunk,
                pb.UploadChunkRequest(upload_id=upload_id, offset=offset, data=chunk),
            )
            failures = 0
        except grpc.RpcError as exc:
            # The offset is checked: after a lost reply or a mismatch, ask where the server is.
            retryable = TRANSIENT | {grpc.StatusCode.FAILED_PRECONDITION}
            failures += 1
            if _code(exc) not in retryable or failures > 5:
                raise
            status = s.call(s.stub.GetUpload, pb.GetUploadRequest(upload_id=upload_id), retries=3)
        if not args.quiet:
            print(f"\ruploaded {status.received_bytes}/{len(data)} bytes", end="", file=sys.stderr)
    if not args.quiet:
        print(file=sys.stderr)
    attachment = status.attachment
    kind = pb.IMAGE if attachment.content_type.startswith("image/") else pb.FILE
    m = s.call(
        s.stub.SendMessage,
        pb.SendMessageRequest(
            group_id=args.group,
            content=args.caption,
            type=kind,
            attachment_id=attachment.id,
            client_msg_id=str(uuid.uuid4()),
        ),
        retries=5,
    )
    if args.json:
        _emit_json(m, out)
    else:
        out.write(f"sent #{m.seq} (id {m.id}): {format_message(m)}\n")
    return 0


def _subscribe(s: Session, positions: dict[int, list[int]]) -> Any:
    """Subscribe, replaying from [last_seq, last_update_seq] per group."""
    request = pb.SubscribeRequest(
        positions=[
            pb.GroupPosition(group_id=g, last_seq=seq, last_update_seq=update_seq)
            for g, (seq, update_seq) in positions.items()
        ]
    )
    return s.stub.Subscribe(request, metadata=s.metadata)


def cmd_tail(s: Session, args: argparse.Namespace, out: TextIO) -> int:
    group = s.call(s.stub.GetGroup, pb.GetGroupRequest(group_id=args.group))
    me = _whoami(s)
    names = Names(s, args.group)
    last_seq = max(0, group.last_seq - args.last) if args.last else group.last_seq
    positions = {args.group: [last_seq, group.last_update_seq]}
    stop = threading.Event()
    attempt = 0
    out.write(f"-- tailing group {group.id} {group.name!r} (Ctrl-C stops) --\n")
    out.flush()
    call: Any = None
    try:
        while not stop.is_set():
            call = _subscribe(s, positions)
            try:
                for batch in call:
                    attempt = 0
                    for ev in batch.events:
                        line = _event_line(ev, args.group, me, names, positions)
                        if line:
                            out.write(line + "\n")
                    out.flush()
            except grpc.RpcError as exc:
                if _code(exc) == grpc.StatusCode.CANCELLED:
                    return 0
                if _code(exc) not in TRANSIENT:
                    raise
                print(f"chat: stream dropped ({_details(exc)}); resuming", file=sys.stderr)
            delay = min(15.0, 0.5 * 2**attempt) * (0.5 + random.random() / 2)
            attempt += 1
            time.sleep(delay)
    except KeyboardInterrupt:
        if call is not None:
            call.cancel()
        out.write("-- stopped --\n")
        out.flush()
    return 0


class Names(dict[int, str]):
    """Display names of a group's members, learned as they become known.

    Holds only real names (placeholders come from `.get(uid, ...)`). The server learns a name
    from the member's token at their first call, so an id seen without a name (typing,
    receipts, presence) makes it ask the member list again: once per id until something new
    (a member event, a presence change) says it is worth asking again.
    """

    def __init__(self, s: Session, group_id: int):
        super().__init__()
        self._session = s
        self._group_id = group_id
        self._asked: set[int] = set()
        self.reload()

    def reload(self) -> None:
        members = self._session.call(
            self._session.stub.GetGroupMembers, pb.GetGroupMembersRequest(group_id=self._group_id)
        )
        self.update({u.id: u.name for u in members.members if u.name})

    def learn(self, user_id: int, name: str) -> None:
        if name:
            self[user_id] = name

    def want(self, user_id: int) -> None:
        """Make sure `user_id`'s name is known if the server knows it."""
        if user_id in self or user_id in self._asked:
            return
        self._asked.add(user_id)
        try:
            self.reload()
        except grpc.RpcError:
            self._asked.discard(user_id)  # a later event tries again

    def forget_asked(self, user_id: int) -> None:
        self._asked.discard(user_id)

    def of(self, user_id: int) -> str:
        return self.get(user_id) or f"user {user_id}"


def _event_line(
    ev: pb.ChatEvent,
    group_id: int,
    me: int,
    names: Names,
    positions: dict[int, list[int]],
) -> str:
    pos = positions.setdefault(group_id, [0, 0])
    kind = ev.WhichOneof("event")
    if kind == "message":
        m = ev.message
        if m.group_id != group_id:
            return ""
        pos[0] = max(pos[0], m.seq)
        names.learn(m.user_id, m.user_name)
        return format_message(m, names)
    if kind == "updated" and ev.updated.group_id == group_id:
        pos[1] = max(pos[1], ev.updated.update_seq)
        return f"  ~ #{ev.updated.seq} is now: {format_message(ev.updated, names)}"
    if kind == "typing" and ev.typing.group_id == group_id:
        for uid in ev.typing.typing_user_ids:
            names.want(uid)
        return "  " + _typing_line(ev.typing.typing_user_ids, me, names)
    if kind == "receipt" and ev.receipt.group_id == group_id:
        names.want(ev.receipt.user_id)
        return f"  ✓ {names.of(ev.receipt.user_id)} read up to #{ev.receipt.read_seq}"
    if kind == "member" and ev.member.group_id == group_id:
        # Printed once, by the SYSTEM message recording it (same seq; it is also what a resume
        # replays); the event only updates names. The position moves with that message.
        user = ev.member.user
        names.forget_asked(user.id)
        names.learn(user.id, user.name)
        names.want(user.id)
        return ""
    if kind == "presence":
        # A member signing in is when the server learns their name from their token.
        names.forget_asked(ev.presence.user_id)
        if ev.presence.online:
            names.want(ev.presence.user_id)
        return ""
    if kind == "gap" and ev.gap.group_id == group_id:
        pos[0] = max(pos[0], ev.gap.resume_seq - 1)
        return f"  ! missed #{ev.gap.from_seq}..#{ev.gap.resume_seq - 1}: see `chat history`"
    return ""


def _whoami(s: Session) -> int:
    """The caller's id, read (not verified) from the token's `sub`."""
    import base64

    token = s.metadata[0][1].removeprefix("Bearer ")
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["sub"])
    except (IndexError, ValueError, KeyError):
        return 0


# ---- entry point ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--server", default=os.environ.get("CHAT_SERVER", DEFAULT_SERVER),
                   help="host:port of a pod or Envoy (env CHAT_SERVER)")
    p.add_argument("--token", default=os.environ.get("CHAT_TOKEN", ""),
                   help="JWT (env CHAT_TOKEN)")
    p.add_argument("--tls", action="store_true", help="use TLS (system roots)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per unary call")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("token", help="mint a development token (HS256 with $JWT_SECRET)")
    t.add_argument("--user", type=int, default=0, help="required unless --backend")
    t.add_argument("--backend", action="store_true",
                   help="a backend token for chat.ChatBackend ($BACKEND_JWT_SECRET, <= 1 h)")
    t.add_argument("--name", default="")
    t.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    t.add_argument("--secret", default="", help="default: $JWT_SECRET")

    sub.add_parser("groups", help="my groups with unread counts")

    c = sub.add_parser("create", help="create a group")
    c.add_argument("name")
    c.add_argument("--member", type=int, action="append", default=[], metavar="USER_ID")
    c.add_argument("--description", default="")
    c.add_argument("--invite-only", action="store_true")

    for name, help_text in (("join", "join a group"), ("leave", "leave a group")):
        j = sub.add_parser(name, help=help_text)
        j.add_argument("group", type=int)
        j.add_argument("--user", type=int, default=0,
                       help="add/remove another user (owners and admins)")

    m = sub.add_parser("members", help="members of a group")
    m.add_argument("group", type=int)

    s = sub.add_parser("send", help="post a message ('-' reads it from stdin)")
    s.add_argument("group", type=int)
    s.add_argument("text", nargs="+")
    s.add_argument("--reply-to", type=int, default=0, metavar="MESSAGE_ID")
    s.add_argument("--client-msg-id", default="", help="idempotency key (default: a new UUID)")

    h = sub.add_parser("history", help="newest messages, oldest first")
    h.add_argument("group", type=int)
    h.add_argument("--limit", type=int, default=20)
    h.add_argument("--before", type=int, default=0, metavar="MESSAGE_ID")

    se = sub.add_parser("search", help="search the messages of my groups, best match first")
    se.add_argument("query", nargs="+", help='words, "a phrase", -excluded, a or b')
    se.add_argument("--group", type=int, default=0, help="only this group")
    se.add_argument("--limit", type=int, default=20)
    se.add_argument("--page", default="", help="next_page_token of the previous page")

    th = sub.add_parser("thread", help="a message and the replies in its thread")
    th.add_argument("parent", type=int, metavar="MESSAGE_ID")
    th.add_argument("--after", type=int, default=0, metavar="SEQ")
    th.add_argument("--limit", type=int, default=50)
    th.add_argument("--mark-read", action="store_true", help="mark the thread read")

    r = sub.add_parser("reply", help="reply in the thread under a message")
    r.add_argument("parent", type=int, metavar="MESSAGE_ID")
    r.add_argument("text", nargs="+")
    r.add_argument("--also-in-group", action="store_true",
                   help="also show the reply in the group's timeline")
    r.add_argument("--client-msg-id", default="", help="idempotency key (default: a new UUID)")

    tl = sub.add_parser("tail", help="follow a group live (Ctrl-C stops)")
    tl.add_argument("group", type=int)
    tl.add_argument("--last", type=int, default=0, help="first replay the last N messages")

    u = sub.add_parser("upload", help="upload a file in chunks and post it")
    u.add_argument("group", type=int)
    u.add_argument("file")
    u.add_argument("--caption", default="")
    u.add_argument("--content-type", default="")
    u.add_argument("--chunk-size", type=int, default=CHUNK_BYTES)
    u.add_argument("--quiet", action="store_true")
    return p


COMMANDS: dict[str, Callable[[Session, argparse.Namespace, TextIO], int]] = {
    "groups": cmd_groups,
    "create": cmd_create,
    "join": cmd_join,
    "leave": cmd_leave,
    "members": cmd_members,
    "send": cmd_send,
    "history": cmd_history,
    "search": cmd_search,
    "thread": cmd_thread,
    "reply": cmd_reply,
    "tail": cmd_tail,
    "upload": cmd_upload,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stream = out or sys.stdout
    if args.command == "token":
        if not args.backend and args.user <= 0:
            parser.error("token: --user is required (a positive user id) unless --backend")
        return cmd_token(args, stream)
    try:
        session = Session(args.server, args.token, tls=args.tls, timeout=args.timeout)
    except CliError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](session, args, stream)
    except grpc.RpcError as exc:
        code = _code(exc)
        print(f"chat: {code.name if code else 'error'}: {_details(exc)}", file=sys.stderr)
        return 1
    except (CliError, OSError) as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        session.close()
