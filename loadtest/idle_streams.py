"""How much memory an idle subscriber stream costs on one pod.

Starts one service process (PostgreSQL + Redis on loopback), opens N Subscribe streams of N
distinct users (each a member of one group of 100), waits until the pod holds them all, and
reports the pod's RSS growth per stream. Also opens and drops streams in a loop afterwards to
check the memory comes back down.

    python -m loadtest.idle_streams --streams 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc

STREAMS_PER_CHANNEL = 250

# One TCP connection per channel: grpc-core otherwise shares one connection between all
# channels to a target, and Envoy admits 100 streams per connection (the pods 1,024).
ONE_CONNECTION_EACH = [("grpc.use_local_subchannel_pool", 1)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


async def run(streams: int, churn_rounds: int) -> dict[str, float]:
    cluster = Cluster(pods=1, with_envoy=False,
                      extra_env={"HEARTBEAT_SECONDS": "60", "DB_POOL_MAX": "10"}).start()
    try:
        pid = cluster.services[0].proc.pid  # type: ignore[union-attr]
        address = cluster.gateway
        base_uid = 50_000_000
        channels = [grpc.aio.insecure_channel(address, options=ONE_CONNECTION_EACH)
                    for _ in range((streams + STREAMS_PER_CHANNEL - 1) // STREAMS_PER_CHANNEL)]
        stub0 = pb_grpc.ChatServiceStub(channels[0])
        for g in range(0, streams, 100):
            owner = base_uid + g
            members = list(range(owner + 1, min(owner + 100, base_uid + streams)))
            await stub0.CreateGroup(
                pb.CreateGroupRequest(name=f"idle {g}", member_ids=members),
                metadata=(("authorization", f"Bearer {mint(cluster.jwt_secret, owner)}"),))
        await asyncio.sleep(1)
        before = rss_kib(pid)
        fds_before = open_fds(pid)
        calls = []
        started = time.monotonic()
        for i in range(streams):
            stub = pb_grpc.ChatServiceStub(channels[i // STREAMS_PER_CHANNEL])
            token = mint(cluster.jwt_secret, base_uid + i)
            calls.append(stub.Subscribe(pb.SubscribeRequest(),
                                        metadata=(("authorization", f"Bearer {token}"),)))
            if len(calls) % 500 == 0:
                await asyncio.gather(*(c.initial_metadata() for c in calls[-500:]))
        await asyncio.gather(*(c.initial_metadata() for c in calls))
        opened_in = time.monotonic() - started
        await asyncio.sleep(3)
        after = rss_kib(pid)
        fds_after = open_fds(pid)
        for c in calls:
            c.cancel()
        await asyncio.sleep(3)
        after_close = rss_kib(pid)
        churn_peak = after_close
        for _ in range(churn_rounds):
            batch = [pb_grpc.ChatServiceStub(channels[0]).Subscribe(
                pb.SubscribeRequest(),
                metadata=(("authorization",
                           f"Bearer {mint(cluster.jwt_secret, base_uid + j)}"),))
                for j in range(200)]
            await asyncio.gather(*(c.initial_metadata() for c in batch))
            for c in batch:
                c.cancel()
            await asyncio.sleep(0.2)
            churn_peak = max(churn_peak, rss_kib(pid))
        await asyncio.sleep(2)
        after_churn = rss_kib(pid)
        for ch in channels:
            await ch.close()
        return {
            "streams": streams,
            "opened_in_s": round(opened_in, 1),
            "rss_before_mib": round(before / 1024, 1),
            "rss_with_streams_mib": round(after / 1024, 1),
            "kib_per_stream": round((after - before) / streams, 1),
            "rss_after_close_mib": round(after_close / 1024, 1),
            "churn_rounds_of_200": churn_rounds,
            "rss_peak_during_churn_mib": round(churn_peak / 1024, 1),
            "rss_after_churn_mib": round(after_churn / 1024, 1),
            "fds_before": fds_before,
            "fds_with_streams": fds_after,
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--churn", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.streams, args.churn)), indent=2))


if __name__ == "__main__":
    main()
