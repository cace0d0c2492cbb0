"""Search benchmark (issue 16): `SearchMessages` on 1,000,000 messages across 1,000 groups,
for a user who is a member of 50 of them; client-side latency through gRPC on loopback to one
pod (PostgreSQL and Redis local), one query in flight at a time.

    python -m loadtest.search_bench                      # 1,000,000 messages, 2,000 queries
    python -m loadtest.search_bench --messages 50000 --groups 50 --queries 200   # smoke run

Messages are written with COPY (the search index dropped during the load and created again
with its migration's definition). Their text is drawn from a 30,000-word synthetic vocabulary
with Zipf-distributed frequencies (the commonest word is in most messages), 4-24 words each,
so common words match many messages, as in real chat; they are written interleaved (seq 1 of
every group, then seq 2...) so a group's messages are spread over the table as live traffic
leaves them. Queries mix: a word drawn
with the same Zipf weights (common words are searched often: the slow case), a rare word, two
words, a quoted phrase, and one query in ten limited to one group. The JSON result (stdout
and loadtest/results/search-<time>.json) has percentiles per kind and overall, and hit counts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections.abc import Iterator

import asyncpg
import grpc

from chat_devstack.cluster import Cluster
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from chat_service.gen import chat_pb2_grpc as pb_grpc
from chat_service.storage.postgres.search_config import SEARCH_INDEX_DDL
from loadtest.bench import RESULTS_DIR

USER = 80_000_001
OTHERS = 5  # other members per group
SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    return sorted(words, key=lambda _: rng.random())


def zipf_weights(size: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 1) for rank in range(size)))


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 2)


def summary(latencies: list[float]) -> dict[str, float]:
    return {"n": len(latencies), "p50_ms": pct(latencies, 0.50), "p95_ms": pct(latencies, 0.95),
            "p99_ms": pct(latencies, 0.99), "max_ms": round(max(latencies) * 1000, 2)}


async def populate(conn: asyncpg.Connection, messages: int, groups: int, member_of: int,
                   words: list[str], cum: list[float], rng: random.Random) -> list[int]:
    """Groups, members and messages; returns the bench user's group ids."""
    per_group = messages // groups
    group_ids = [r["id"] for r in await conn.fetch(
        """INSERT INTO groups (name, created_by, last_seq, member_count)
           SELECT 'bench ' || i, $1, $2, $3 FROM generate_series(1, $4) AS i RETURNING id""",
        USER + 1, per_group, OTHERS + 1, groups)]
    mine = sorted(rng.sample(group_ids, member_of))
    members = [(g, USER + 1 + k, 1) for g in group_ids for k in range(OTHERS)]
    members += [(g, USER, 1) for g in mine]
    await conn.copy_records_to_table("group_members", records=members,
                                     columns=["group_id", "user_id", "role"])
    await conn.execute("DROP INDEX messages_search_idx")

    def rows() -> Iterator[tuple[int, int, int, int, str]]:
        # Interleaved as live traffic writes them: seq 1 of every group, then seq 2, ...
        # so one group's messages are spread over the whole table, not packed together.
        for seq in range(1, per_group + 1):
            lengths = [rng.randint(4, 24) for _ in group_ids]
            drawn = rng.choices(words, cum_weights=cum, k=sum(lengths))
            at = 0
            for g, n in zip(group_ids, lengths, strict=True):
                yield g, seq, USER + 1 + seq % OTHERS, 0, " ".join(drawn[at:at + n])
                at += n

    await conn.copy_records_to_table(
        "messages", records=rows(), columns=["group_id", "seq", "user_id", "kind", "content"])
    await conn.execute(SEARCH_INDEX_DDL)
    await conn.execute("VACUUM ANALYZE messages")
    await conn.execute("VACUUM ANALYZE group_members")
    return mine


def queries(n: int, words: list[str], cum: list[float], mine: list[int],
            rng: random.Random) -> list[tuple[str, str, int]]:
    """(kind, query, group_id or 0)."""
    out: list[tuple[str, str, int]] = []
    for _ in range(n):
        kind = rng.choices(["common", "rare", "two words", "phrase"], [4, 3, 2, 1])[0]
        if kind == "common":
            text = rng.choices(words, cum_weights=cum)[0]
        elif kind == "rare":
            text = rng.choice(words[len(words) // 3:])
        elif kind == "two words":
            text = " ".join(rng.choices(words, cum_weights=cum, k=2))
        else:
            text = '"' + " ".join(rng.choices(words, cum_weights=cum, k=2)) + '"'
        group = rng.choice(mine) if rng.random() < 0.1 else 0
        out.append((kind, text, group))
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    words = vocabulary(30_000, rng)
    cum = zipf_weights(len(words))
    cluster = Cluster(pods=1, with_envoy=False).start()
    try:
        assert cluster.postgres is not None
        conn = await asyncpg.connect(host="127.0.0.1", port=cluster.postgres.port,
                                     user="chat", password="chat", database="chat")
        started = time.monotonic()
        mine = await populate(conn, args.messages, args.groups, args.member_of, words, cum, rng)
        loaded = time.monotonic() - started
        size = await conn.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('messages'))")
        await conn.close()
        md = (("authorization", f"Bearer {mint(cluster.jwt_secret, USER)}"),)
        plan = queries(args.warmup + args.queries, words, cum, mine, rng)
        by_kind: dict[str, list[float]] = {}
        hits: list[int] = []
        async with grpc.aio.insecure_channel(cluster.gateway) as channel:
            stub = pb_grpc.ChatServiceStub(channel)
            for i, (kind, text, group) in enumerate(plan):
                t = time.perf_counter()
                reply = await stub.SearchMessages(
                    pb.SearchMessagesRequest(query=text, group_id=group, limit=20), metadata=md)
                elapsed = time.perf_counter() - t
                if i < args.warmup:
                    continue
                by_kind.setdefault(kind, []).append(elapsed)
                hits.append(len(reply.hits))
                assert all(h.message.group_id in mine for h in reply.hits)
        everything = [x for xs in by_kind.values() for x in xs]
        return {
            "messages": args.messages, "groups": args.groups, "member_of": args.member_of,
            "load_seconds": round(loaded, 1), "messages_table": size,
            "overall": summary(everything),
            "by_kind": {k: summary(v) for k, v in sorted(by_kind.items())},
            "queries_with_hits": sum(1 for h in hits if h),
            "full_pages": sum(1 for h in hits if h == 20),
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--member-of", type=int, default=50)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (RESULTS_DIR / f"search-{stamp}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
