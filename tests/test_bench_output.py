"""`make bench` leaves the tree clean: its default output directory is ignored by git, while the
published results beside it stay tracked."""

from __future__ import annotations

import subprocess

from loadtest.bench import LOCAL_RESULTS_DIR, RESULTS_DIR, ROOT


def ignored(path: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    return done.returncode == 0


def test_bench_writes_where_git_ignores_and_published_results_stay_tracked() -> None:
    local = LOCAL_RESULTS_DIR.relative_to(ROOT)
    assert LOCAL_RESULTS_DIR.parent == RESULTS_DIR
    for name in ("20261204T000000Z.json", "latest.md", "profile-x-pod0.txt", "logs-x/pod-0.log"):
        assert ignored(f"{local}/{name}"), name
    published = RESULTS_DIR.relative_to(ROOT)
    assert not ignored(f"{published}/latest.md")
    assert not ignored(f"{published}/20261204T000000Z.json")
