"""`bench.py --quick` against a real cluster: it runs, moves messages, loses none.

No timing assertions: the figures depend on the machine. Takes ~35 s (cluster start included).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_quick_bench_delivers_every_message_once_in_order(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--quick", "--duration", "2",
         "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["correct"] is True

    groups = result["scenarios"]["groups"]
    assert groups["subscribed"] == groups["subscribers"] > 0
    fanouts = result["scenarios"]["fanout"]
    assert fanouts and all(f["subscribed"] == f["members"] > 0 for f in fanouts)

    steps = groups["steps"] + [s for f in fanouts for s in f["steps"]]
    assert any(s.get("half_of_max") for s in groups["steps"])
    for step in steps:
        name = step["step"]
        assert step["acked"] > 0 and step["acked_per_s"] > 0, name
        assert step["deliveries"] > 0 and step["deliveries_per_s"] > 0, name
        assert step["duplicates"] == 0, name
        assert step["gaps"] == 0, name
        assert step["missing"] == 0, name
        assert step["unexpected"] == 0, name
        # Every committed message reached every member's stream.
        assert step["deliveries"] == step["expected_deliveries"], name
        assert step["send_errors"] == {}, name
        assert set(step["resources"]) >= {"pod0", "pod1", "pod2", "envoy", "postgres", "loadgen"}


@pytest.mark.timeout(240)
def test_the_node_client_checks_and_measures_the_same_as_the_python_one(tmp_path: Path) -> None:
    """`--client node` (the lighter load generator of loadtest/bench/node_worker.mjs: gRPC
    by hand over Node's HTTP/2) subscribes, sends, and checks every delivery once, in order."""
    out = tmp_path / "node.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--quick", "--scenario", "fanout",
         "--client", "node", "--duration", "2", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["correct"] is True and result["options"]["client"] == "node"
    (fanout,) = result["scenarios"]["fanout"]
    assert fanout["subscribed"] == fanout["members"] > 0
    for step in fanout["steps"]:
        assert step["acked"] > 0 and step["send_errors"] == {}, step["step"]
        assert step["deliveries"] == step["expected_deliveries"] > 0, step["step"]
        assert step["duplicates"] == step["gaps"] == step["missing"] == 0, step["step"]
        assert step["unexpected"] == 0, step["step"]
        assert step["deliver_ms"]["count"] == step["deliveries"], step["step"]
