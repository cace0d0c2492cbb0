"""The benchmark: a local cluster (3 pods, Envoy, PostgreSQL, Redis) under a measured load.

    .venv/bin/python -m loadtest.bench                 # full run, ~8 minutes
    .venv/bin/python -m loadtest.bench --quick         # smoke test, ~30 s
    .venv/bin/python -m loadtest.bench --scenario groups --duration 10

Scenarios (every client goes through Envoy, like a real deployment):

  groups   200 groups x 5 members, every member subscribed. Senders at fixed offered rates
           (open loop: sends are scheduled by the clock, not by the previous ack), then a
           closed-loop max-rate run, then a run at half the best acknowledged rate.
  fanout   one group of 500 members, then one of 1,000: every member subscribed (distinct
           tokens, so Envoy's ring hash spreads them over the pods), a few senders; from
           20 msg/s (light load, where latency matters) to 250 msg/s.
  seed     the seed proto's own path, as `make dev` runs it: one group of 998 members, each
           on a StreamMessages stream straight to one service process (no Envoy), each
           message its own write; 20 msg/s.

Measured per step: acknowledged sends/s and ack latency; deliveries/s and send->deliver latency
(the subscriber's clock on arrival minus the message's `timestamp_ms`, the commit time);
errors by status code; CPU% and RSS of every process; and correctness: every subscriber must
receive every message of its group exactly once and in seq order (duplicates, gaps and
messages missing at the end are counted and must be 0). Every row also gives the server's CPU
(pods, Envoy, PostgreSQL, Redis) per acknowledged message and the machine's idle share.

The load generator is `--workers` processes (asyncio + grpc.aio, several channels each) that
share the machine's cores with the cluster; its CPU is reported as `loadgen`.
Results: loadtest/results/<timestamp>.json and loadtest/results/latest.md.
"""

from loadtest.bench.cli import main
from loadtest.bench.constants import LOCAL_RESULTS_DIR, RESULTS_DIR, ROOT
from loadtest.bench.histograms import Hist
from loadtest.bench.report import markdown, summarize_raw

__all__ = ["LOCAL_RESULTS_DIR", "RESULTS_DIR", "ROOT", "Hist", "main", "markdown", "summarize_raw"]
