"""`loadtest/scale.py` on two real pods and its PNG chart: each pod reads exactly its own
groups' events (counters, not timings), and with one shard each pod reads everything.
Takes ~30 s (two cluster starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_two_pods_read_only_their_own_groups_and_the_chart_is_a_png(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'service'}:{ROOT}"}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.scale", "--pods", "2", "--groups", "3",
         "--duration", "3", "--rate", "10", "--baseline-shards", "1", "--output", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    interest, baseline = json.loads(out.read_text())["steps"]
    for row in interest["per_pod"]:
        assert row["delivered_per_s"] > 0
        assert 0.8 <= row["read_over_own"] <= 1.2, row  # its own groups' events, no more
    for row in baseline["per_pod"]:
        # one shard: every pod reads every event, the other pod's too
        assert row["entries_read_per_s"] >= 0.9 * baseline["sent_per_s"] > row["own_events_per_s"]
    png = tmp_path / "scale.png"
    subprocess.run([sys.executable, "-m", "loadtest.png_chart", str(out), str(png)],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
