"""README sections a newcomer reads first: the API table and the load-testing command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start:end]


def test_api_table_lists_every_rpc_of_the_service() -> None:
    proto = (ROOT / "proto" / "chat.proto").read_text(encoding="utf-8")
    rpcs = set(re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto, re.M))
    assert "SetMemberRole" in rpcs
    table = readme_section("### API")
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert rpcs <= listed, f"RPCs missing from the README's API table: {rpcs - listed}"


def test_load_testing_shows_the_quick_run_that_make_bench_accepts() -> None:
    section = readme_section("## Load testing")
    assert 'make bench BENCH_ARGS="--quick"' in section
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^bench:.*\n\t.*-m loadtest\.bench \$\(BENCH_ARGS\)", makefile, re.M)
