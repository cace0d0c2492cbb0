"""Where results go, and the load generator's fixed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "loadtest" / "results"  # published results, committed
# What a run writes by default (JSON, latest.md, profiles, logs): ignored by git, so `make bench`
# leaves the tree clean; copy a run to RESULTS_DIR to publish it.
LOCAL_RESULTS_DIR = RESULTS_DIR / "local"

CONTENT = "benchmark message: a typical short chat line of about sixty characters"
# Streams per client connection: Envoy admits at most 100 concurrent streams per downstream
# connection (deploy/envoy/README.md); more would wait, unsubscribed, in the client.
SUBS_PER_CHANNEL = 100
SEND_CHANNELS = 4  # unary connections per worker
MAX_INFLIGHT = 1000  # per worker; beyond it an open-loop send is counted as not sent
SEND_TIMEOUT = 10.0
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not shared
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 60_000),
]

SubSpec = tuple[int, str, dict[int, int]]  # user id, token, {group id: seq already seen}
SendSpec = tuple[int, str, int]  # user id, token, group id
