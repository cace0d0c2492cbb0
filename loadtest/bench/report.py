"""What a run reports: the one-line step summary, latest.md, py-spy summaries, the verdict."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def summarize_raw(path: Path, top: int = 25) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks: the frames where most samples were taken (own time)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            if "chat_service/" in frame or "asyncpg/" in frame or "redis/" in frame:
                inclusive[frame] += n

    def pct(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "pct": round(100.0 * n / total, 1)}
            for frame, n in counter.most_common(top)
        ] if total else []

    return {"samples": total, "top_own": pct(own), "top_inclusive": pct(inclusive)}


def one_line(r: dict[str, Any]) -> str:
    d, a = r["deliver_ms"], r["ack_ms"]
    res = r["resources"]
    cpu = " ".join(f"{k}={v['cpu_pct']:.0f}%" for k, v in res.items())
    errs = sum(r["send_errors"].values())
    return (
        f"  {r['step']:<24} acked {r['acked_per_s']:>8.1f}/s  ack p50/p99 "
        f"{fmt(a['p50'])}/{fmt(a['p99'])} ms  deliveries {r['deliveries_per_s']:>9.1f}/s  "
        f"deliver p50/p95/p99 {fmt(d['p50'])}/{fmt(d['p95'])}/{fmt(d['p99'])} ms  "
        f"errors {errs} dup {r['duplicates']} gap {r['gaps']} missing {r['missing']}  "
        f"cpu {cpu}"
    )


def _cpu(resources: dict[str, Any], name: str) -> str:
    """CPU% of a process group, '-' when the run did not record it."""
    entry = resources.get(name)
    return "-" if entry is None else f"{entry['cpu_pct']:.0f}"


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results ({result['started']})",
        "",
        f"Machine: {result['machine']['cpus']} cores ({result['machine']['cpu_model']}), "
        f"Python {result['machine']['python']}, grpcio {result['machine']['grpcio']}, "
        f"commit {result['machine'].get('commit') or '?'}; "
        "everything on loopback on this one machine (3 pods, Envoy, PostgreSQL, Redis and the "
        f"load generator: {result['options']['workers']} worker processes). Command: "
        f"`{result['command']}`. Latencies in ms; CPU in % of one core, averaged over the "
        "step (`other`: the rest of the machine - kernel, other jobs; `idle`: unused); "
        "send→deliver = subscriber clock at arrival - the message's `timestamp_ms`.",
        "",
    ]
    header = (
        "| step | offered/s | acked/s | ack p50 | ack p99 | deliveries/s | deliver p50 "
        "| deliver p95 | deliver p99 | errors | dup/gap/missing | CPU pods | envoy | pg | "
        "redis | loadgen | other | idle | server CPU ms/ack |"
    )
    sep = "|" + "---|" * 19
    for key, title in (("groups", "Scenario groups"), ("fanout", "Scenario fanout"),
                       ("seed", "Scenario seed (StreamMessages on pod0, no Envoy)")):
        runs = result["scenarios"].get(key)
        if not runs:
            continue
        for run in runs if isinstance(runs, list) else [runs]:
            if "members" in run:
                lines.append(f"## {title}: one group of {run['members']} members "
                             f"({run['subscribed']} subscribed, {run['senders']} senders)")
            else:
                lines.append(f"## {title}: {run['groups']} groups x {run['group_size']} "
                             f"({run['subscribed']}/{run['subscribers']} subscribed)")
            lines += ["", header, sep]
            for r in run["steps"]:
                res = r["resources"]
                pods = "+".join(f"{v['cpu_pct']:.0f}" for k, v in res.items()
                                if k.startswith("pod"))
                offered = (str(r["offered_per_s"]) if r["offered_per_s"] is not None
                           else f"closed c={r['concurrency']}")
                errs = ", ".join(f"{k} {v}" for k, v in r["send_errors"].items()) or "0"
                if r["not_sent"]:
                    errs += f", not sent {r['not_sent']}"
                d, a = r["deliver_ms"], r["ack_ms"]
                lines.append(
                    f"| {r['step']} | {offered} | {r['acked_per_s']:.0f} | {fmt(a['p50'])} | "
                    f"{fmt(a['p99'])} | {r['deliveries_per_s']:.0f} | {fmt(d['p50'])} | "
                    f"{fmt(d['p95'])} | {fmt(d['p99'])} | {errs} | "
                    f"{r['duplicates']}/{r['gaps']}/{r['missing']} | {pods} | "
                    f"{res['envoy']['cpu_pct']:.0f} | {res['postgres']['cpu_pct']:.0f} | "
                    f"{res.get('redis', {}).get('cpu_pct', 0):.0f} | "
                    f"{res['loadgen']['cpu_pct']:.0f} | "
                    f"{_cpu(res, 'other')} | {_cpu(res, 'idle')} | {server_ms_per_ack(r)} |"
                )
            lines.append("")
            rss = run["steps"][-1]["resources"] if run["steps"] else {}
            if rss:
                lines.append("Peak memory in the last step (MB; RSS, PostgreSQL: PSS of all "
                             "its processes): " + ", ".join(
                    f"{k} {v['rss_mb']:.0f}" for k, v in rss.items()
                    if k not in ("other", "idle")))
                lines.append("")
    for p in result.get("profiles", []):
        lines.append(f"py-spy, pod0, step `{p['step']}` ({p['samples']} samples, own time; "
                     f"raw stacks: `{p['file']}`; without --native, time in C code under the "
                     "event loop - grpc core, uvloop, protobuf - shows as `Runner.run`):")
        lines.append("")
        for f in p["top_own"][:12]:
            lines.append(f"- {f['pct']}% {f['frame']}")
        lines.append("")
    verdict = "PASS" if result["correct"] else "FAIL"
    lines.append(f"Correctness (every subscriber got every message once, in order): {verdict}")
    lines.append("")
    return "\n".join(lines)


SERVER = ("pod", "envoy", "postgres", "redis")


def server_ms_per_ack(step: dict[str, Any]) -> str:
    """CPU of the server side (pods, Envoy, PostgreSQL, Redis) per acknowledged message."""
    per_ack = step.get("cpu_ms_per_ack") or {}
    if not per_ack:
        return "-"
    return f"{sum(v for k, v in per_ack.items() if k.startswith(SERVER)):.2f}"


def is_correct(result: dict[str, Any]) -> bool:
    for runs in result["scenarios"].values():
        for run in runs if isinstance(runs, list) else [runs]:
            for s in run["steps"]:
                if s["duplicates"] or s["gaps"] or s["missing"] or s["unexpected"]:
                    return False
                if run.get("subscribed") != run.get("subscribers", run.get("members")):
                    return False
    return True
