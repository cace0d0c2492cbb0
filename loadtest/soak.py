"""Soak: a steady load for a long time; pod memory and open file descriptors must stay flat.

Starts the local cluster (3 pods + Envoy + PostgreSQL + Redis), 40 groups of 5 members all
subscribed through Envoy, senders at a fixed total rate, and samples every pod's RSS and
open file descriptors. At the end every subscriber must hold every acknowledged message of
its group exactly once, in order.

    python -m loadtest.soak --minutes 10 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

# One TCP connection per channel: grpc-core otherwise shares one connection between all
# channels to a target, and Envoy admits 100 streams per connection (the pods 1,024).
ONE_CONNECTION_EACH = [("grpc.use_local_subchannel_pool", 1)]


def sample(pid: int) -> tuple[float, int]:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return rss / 1024, len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def soak(minutes: float, rate: float, groups: int) -> dict[str, object]:
    cluster = Cluster(pods=3, with_envoy=True).start()
    try:
        channels = [grpc.aio.insecure_channel(cluster.gateway, options=ONE_CONNECTION_EACH)
                    for _ in range(8)]
        base = 60_000_000
        group_ids: list[int] = []
        members: dict[int, list[int]] = {}
        for g in range(groups):
            uids = [base + g * 5 + i for i in range(5)]
            stub = pb_grpc.ChatServiceStub(channels[g % 8])
            owner_md = (("authorization", f"Bearer {mint(cluster.jwt_secret, uids[0])}"),)
            group = await stub.CreateGroup(
                pb.CreateGroupRequest(name=f"soak {g}", member_ids=uids[1:]), metadata=owner_md)
            group_ids.append(group.id)
            members[group.id] = uids
        received: dict[tuple[int, int], list[int]] = {}
        stop = asyncio.Event()

        async def subscriber(uid: int, gid: int, channel: grpc.aio.Channel) -> None:
            md = (("authorization", f"Bearer {mint(cluster.jwt_secret, uid, ttl=86400)}"),)
            seqs = received.setdefault((uid, gid), [])
            while not stop.is_set():
                position = [pb.GroupPosition(group_id=gid, last_seq=seqs[-1] if seqs else 1)]
                call = pb_grpc.ChatServiceStub(channel).Subscribe(
                    pb.SubscribeRequest(positions=position), metadata=md)
                try:
                    async for response in call:
                        seqs.extend(e.message.seq for e in response.events
                                    if e.WhichOneof("event") == "message")
                        if stop.is_set():
                            break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)
                call.cancel()

        acked: dict[int, list[int]] = {gid: [] for gid in group_ids}
        errors = 0

        async def sender() -> None:
            nonlocal errors
            tokens = {gid: mint(cluster.jwt_secret, members[gid][0], ttl=86400)
                      for gid in group_ids}
            i = 0
            next_at = time.monotonic()
            while not stop.is_set():
                gid = group_ids[i % len(group_ids)]
                stub = pb_grpc.ChatServiceStub(channels[i % 8])
                md = (("authorization", f"Bearer {tokens[gid]}"),)
                request = pb.SendMessageRequest(group_id=gid, content=f"soak {i}",
                                                client_msg_id=uuid.uuid4().hex)
                for _ in range(20):
                    try:
                        reply = await stub.SendMessage(request, metadata=md, timeout=5)
                        acked[gid].append(reply.seq)
                        break
                    except grpc.aio.AioRpcError:
                        errors += 1
                        await asyncio.sleep(0.1)
                i += 1
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        subs = [asyncio.create_task(subscriber(uid, gid, channels[n % 8]))
                for n, (gid, uids) in enumerate(members.items()) for uid in uids]
        await asyncio.sleep(2)
        senders = asyncio.create_task(sender())
        pids = {s.name: s.proc.pid for s in cluster.services if s.proc}
        samples: list[dict[str, object]] = []
        started = time.monotonic()
        while time.monotonic() - started < minutes * 60:
            row: dict[str, object] = {"t_s": round(time.monotonic() - started)}
            for name, pid in pids.items():
                rss, fds = sample(pid)
                row[f"{name}_rss_mib"] = round(rss, 1)
                row[f"{name}_fds"] = fds
            samples.append(row)
            print(json.dumps(row), flush=True)
            await asyncio.sleep(30)
        stop.set()
        await senders
        await asyncio.sleep(3)
        for task in subs:
            task.cancel()
        await asyncio.gather(*subs, return_exceptions=True)
        bad = 0
        for (_uid, gid), seqs in received.items():
            expected = list(range(2, max(acked[gid], default=1) + 1))
            if seqs != expected:
                bad += 1
        total = sum(len(v) for v in acked.values())
        for ch in channels:
            await ch.close()
        return {"minutes": minutes, "rate": rate, "acked": total, "send_retries": errors,
                "subscribers_incomplete_or_out_of_order": bad, "samples": samples}
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--groups", type=int, default=40)
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.rate, args.groups))
    out = Path("loadtest/results/soak-latest.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
