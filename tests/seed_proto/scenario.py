"""A client generated from the original plan's chat.proto, verbatim, driving every seed RPC.

Runs in its own process: the seed stubs define the same `chat.*` message names as ours, and
one Python process cannot load both into its protobuf descriptor pool. Authenticates only the
way the seed does (the `jwt_token` request fields; no metadata). Prints a JSON report.

usage: python scenario.py STUB_DIR ADDRESS
           ALICE_ID ALICE_TOKEN BOB_ID BOB_TOKEN CAROL_ID CAROL_TOKEN
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def main(argv: list[str]) -> dict[str, Any]:
    stub_dir, address = argv[0], argv[1]
    alice, alice_t, bob, bob_t, carol, carol_t = (
        int(argv[2]), argv[3], int(argv[4]), argv[5], int(argv[6]), argv[7]
    )
    sys.path.insert(0, stub_dir)
    import chat_pb2 as pb  # type: ignore[import-not-found]
    import chat_pb2_grpc as pb_grpc  # type: ignore[import-not-found]
    import grpc

    report: dict[str, Any] = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ChatServiceStub(channel)
        group = await stub.CreateGroup(pb.CreateGroupRequest(
            name="seed group", description="made by a seed client", member_ids=[bob],
            created_by=alice, jwt_token=alice_t))
        report["group"] = {"id": group.id, "name": group.name, "created_by": group.created_by,
                           "member_ids": sorted(group.member_ids)}
        joined = await stub.JoinGroup(pb.JoinGroupRequest(
            group_id=group.id, user_id=carol, jwt_token=carol_t))
        report["join"] = {"success": joined.success, "message": joined.message}
        members = await stub.GetGroupMembers(pb.GetGroupMembersRequest(
            group_id=group.id, jwt_token=alice_t))
        report["members"] = sorted(m.id for m in members.members)

        # Two bidirectional streams, as the seed's Vue component uses them. A seed client
        # authenticates a stream with the token of the first request it writes.
        outgoing: dict[str, asyncio.Queue[Any]] = {"alice": asyncio.Queue(),
                                                   "bob": asyncio.Queue()}
        seen: dict[str, list[str]] = {"alice": [], "bob": []}

        async def requests(name: str) -> Any:
            while True:
                item = await outgoing[name].get()
                if item is None:
                    return
                yield item

        calls = {n: stub.StreamMessages(requests(n)) for n in ("alice", "bob")}

        async def read(name: str) -> None:
            async for response in calls[name]:
                seen[name].append(response.content)

        async def until(predicate: Any) -> bool:
            for _ in range(1000):
                if predicate():
                    return True
                await asyncio.sleep(0.01)
            return False

        readers = [asyncio.create_task(read(n)) for n in calls]
        who = {"alice": (alice, alice_t), "bob": (bob, bob_t)}

        async def post(name: str, text: str) -> None:
            uid, tok = who[name]
            await outgoing[name].put(pb.MessageRequest(
                group_id=group.id, user_id=uid, content=text, type=pb.TEXT, jwt_token=tok))

        for name in ("bob", "alice"):
            await post(name, f"{name} is here")
            await until(lambda n=name: f"{n} is here" in seen[n])
        texts = [f"seed message {i}" for i in range(6)]
        for i, text in enumerate(texts):
            await post("alice" if i % 2 == 0 else "bob", text)
        await until(lambda: all(set(texts) <= set(v) for v in seen.values()))
        report["stream_order"] = {k: [t for t in v if t in texts] for k, v in seen.items()}
        report["sender_saw_own_first_message"] = seen["bob"][:1] == ["bob is here"]
        typing = await stub.SendTypingIndicator(pb.TypingRequest(
            group_id=group.id, user_id=bob, is_typing=True, jwt_token=bob_t))
        report["typing"] = typing.success
        history = await stub.GetMessageHistory(pb.GetHistoryRequest(
            group_id=group.id, limit=4, jwt_token=carol_t))
        older = await stub.GetMessageHistory(pb.GetHistoryRequest(
            group_id=group.id, limit=50, before_id=history.messages[0].id, jwt_token=carol_t))
        report["history"] = [m.content for m in list(older.messages) + list(history.messages)
                             if m.type == pb.TEXT and m.content.startswith("seed message")]
        report["history_has_more"] = [history.has_more, older.has_more]
        report["timestamps_ok"] = all(m.timestamp > 1_700_000_000 for m in history.messages)
        left = await stub.LeaveGroup(pb.LeaveGroupRequest(
            group_id=group.id, user_id=carol, jwt_token=carol_t))
        report["leave"] = left.success
        members = await stub.GetGroupMembers(pb.GetGroupMembersRequest(
            group_id=group.id, jwt_token=alice_t))
        report["members_after_leave"] = sorted(m.id for m in members.members)
        try:
            await stub.GetMessageHistory(pb.GetHistoryRequest(group_id=group.id, jwt_token=""))
            report["no_token"] = "OK"
        except grpc.aio.AioRpcError as exc:
            report["no_token"] = exc.code().name
        for name in ("alice", "bob"):
            await outgoing[name].put(None)
        for task in readers:
            try:
                await asyncio.wait_for(task, 10)
                report.setdefault("streams_closed", []).append("OK")
            except grpc.aio.AioRpcError as exc:
                report.setdefault("streams_closed", []).append(exc.code().name)
        report["texts"] = texts
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
