"""Command line: parse options, start the cluster, run the scenarios, write the results."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import psutil  # type: ignore[import-untyped]

from chat_devstack.tokens import DEV_JWT_SECRET
from loadtest.bench.constants import (
    LOCAL_RESULTS_DIR,
    RESULTS_DIR,
    ROOT,
)
from loadtest.bench.report import is_correct, markdown
from loadtest.bench.scenarios import Bench, Options


def parse_args(argv: Sequence[str] | None) -> tuple[Options, list[str]]:
    from loadtest import bench  # the package's docstring is the help text

    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench", description=bench.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small and short: a smoke test")
    p.add_argument("--scenario", choices=["all", "groups", "fanout", "seed"], default="all")
    p.add_argument("--duration", type=float, help="seconds per measured step (default 20)")
    p.add_argument("--workers", type=int, default=2, help="load-generator processes")
    p.add_argument("--rates", help="offered msg/s steps of scenario groups, comma-separated")
    p.add_argument("--fanout-sizes", help="group sizes of scenario fanout, comma-separated")
    p.add_argument("--fanout-rates", help="offered msg/s steps of scenario fanout")
    p.add_argument("--seed-size", type=int, help="members of scenario seed (default 998)")
    p.add_argument("--seed-rates", help="offered msg/s steps of scenario seed (default 20)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy pod0 during the groups steps, the largest fan-out and seed")
    p.add_argument("--profile-native", action="store_true",
                   help="with --profile: include native frames (grpc core, uvloop); pauses "
                   "the pod at each sample, so it slows it down")
    p.add_argument("--keep-logs", action="store_true",
                   help="copy the pods' and Envoy's logs to results/local/logs-<timestamp>/")
    p.add_argument("--client", choices=["python", "node"], default="python",
                   help="load-generator workers: python (grpc.aio, the default) or node (Node's "
                   "HTTP/2, no gRPC library: ~9 us of CPU per delivery against ~35, for the "
                   "steps where the Python client's own CPU sets the figure)")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio in the workers")
    p.add_argument("--output", type=Path,
                   help="result JSON (default results/local/<timestamp>.json, ignored by git, "
                   "with results/local/latest.md; with --output latest.md is left alone)")
    p.add_argument("--report", type=Path, metavar="JSON",
                   help="no run: rewrite the published results/latest.md from a result JSON")
    args = p.parse_args(argv)

    def floats(text: str | None, default: list[float]) -> list[float]:
        return [float(x) for x in text.split(",")] if text else default

    if args.quick:
        opts = Options(
            quick=True, duration=args.duration or 3.0, workers=args.workers, group_count=20,
            group_size=5, rates=floats(args.rates, [200.0]), closed_concurrency=16,
            fanout_sizes=[int(x) for x in floats(args.fanout_sizes, [100.0])],
            fanout_rates=floats(args.fanout_rates, [20.0]), fanout_senders=2,
            seed_size=args.seed_size or 50, seed_rates=floats(args.seed_rates, [20.0]),
            profile=args.profile, uvloop=not args.no_uvloop,
        )
    else:
        opts = Options(
            quick=False, duration=args.duration or 20.0, workers=args.workers, group_count=200,
            group_size=5, rates=floats(args.rates, [500.0, 1000.0, 2000.0, 4000.0]),
            closed_concurrency=128,
            fanout_sizes=[int(x) for x in floats(args.fanout_sizes, [500.0, 1000.0])],
            fanout_rates=floats(args.fanout_rates, [20.0, 50.0, 100.0, 200.0, 250.0]),
            fanout_senders=4,
            seed_size=args.seed_size or 998, seed_rates=floats(args.seed_rates, [20.0]),
            profile=args.profile, uvloop=not args.no_uvloop,
        )
    opts.output = args.output
    opts.profile_native = args.profile_native
    opts.report = args.report
    opts.keep_logs = args.keep_logs
    opts.client = args.client
    scenarios = ["groups", "fanout", "seed"] if args.scenario == "all" else [args.scenario]
    return opts, scenarios


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
            text=True, timeout=10,
        ).stdout.strip()
    return {
        "commit": commit,
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
    }


def copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.log"):
        shutil.copy(path, target / path.name)


async def amain(opts: Options, scenarios: list[str], command: str) -> dict[str, Any]:
    from chat_devstack.cluster import Cluster

    started = dt.datetime.now(dt.UTC)
    busy_before = await asyncio.to_thread(psutil.cpu_percent, 3.0)
    if busy_before > 25.0:
        print(f"warning: the machine is already {busy_before:.0f}% busy before the benchmark "
              "starts; figures will be low (see the `other` column)", flush=True)
    t0 = time.monotonic()
    cluster = Cluster(
        pods=3, with_envoy=True, with_metrics=True, jwt_secret=DEV_JWT_SECRET,
        # Capacity is what is measured: per-user/per-group send limits and the streams-per-user
        # cap off (unknown settings are ignored by older versions of the service).
        extra_env={
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_USER_SEND": "off",
            "RATE_LIMIT_GROUP_SEND": "off",
            "RATE_LIMIT_GROUPS_CREATED": "off",
            "RATE_LIMIT_TYPING": "off",
            "MAX_STREAMS_PER_USER": "100000",
        },
    )
    await asyncio.to_thread(cluster.start)
    print(f"cluster up in {time.monotonic() - t0:.1f}s:\n{cluster.describe()}", flush=True)
    bench = Bench(cluster, opts)
    result: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M:%SZ"),
        "command": command,
        "machine": {**machine(), "busy_before_pct": busy_before},
        "options": {k: (str(v) if isinstance(v, Path) else v)
                    for k, v in opts.__dict__.items()},
        "scenarios": {},
    }
    try:
        if "groups" in scenarios:
            result["scenarios"]["groups"] = await bench.scenario_groups()
        if "fanout" in scenarios:
            result["scenarios"]["fanout"] = [
                await bench.scenario_fanout(size) for size in opts.fanout_sizes
            ]
        if "seed" in scenarios:
            result["scenarios"]["seed"] = [await bench.scenario_seed()]
    finally:
        if opts.keep_logs:
            logs = LOCAL_RESULTS_DIR / f"logs-{bench.stamp}"
            await asyncio.to_thread(copy_logs, Path(cluster.base_dir), logs)
            result["logs"] = str(logs.relative_to(ROOT))
        await asyncio.to_thread(cluster.stop)
    result["profiles"] = bench.profiles
    result["correct"] = is_correct(result)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    opts, scenarios = parse_args(argv)
    if opts.report is not None:
        md = markdown(json.loads(opts.report.read_text()))
        (RESULTS_DIR / "latest.md").write_text(md)
        print(md)
        return 0
    command = "python -m loadtest.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    LOCAL_RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(amain(opts, scenarios, command.strip()))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = opts.output or LOCAL_RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result)
    write_latest = not opts.quick and opts.output is None
    latest = LOCAL_RESULTS_DIR / "latest.md"
    if write_latest:
        latest.write_text(md)
    print("\n" + md)
    print(f"results: {out}" + (f" and {latest}" if write_latest else ""))
    print(f"elapsed {result['elapsed_s']}s")
    return 0 if result["correct"] else 1
