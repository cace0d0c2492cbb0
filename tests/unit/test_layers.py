"""The service's floors import only downwards: wire/ below fanout/ and api/, nothing below
api/ imports api/, and the webhook notifier reads Redis entries through wire/, not through
the broker; the domain reads its settings (limits, privacy) from its own modules, not
from config.py (which imports every component)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "service" / "chat_service"


def imports_of(folder: str) -> dict[str, set[str]]:
    """chat_service modules imported by each file below `folder`."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        found[str(path.relative_to(PACKAGE))] = {
            n for n in names if n.startswith("chat_service.")
        }
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("fanout", ("chat_service.api",)),
        ("notifications", ("chat_service.api", "chat_service.fanout.broker_redis")),
        ("domain", ("chat_service.api", "chat_service.fanout", "chat_service.wire",
                    "chat_service.config")),
        ("wire", ("chat_service.api", "chat_service.fanout", "chat_service.notifications",
                  "chat_service.storage")),
    ],
)
def test_no_import_from_a_higher_floor(folder: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        file: sorted(n for n in names if n.startswith(forbidden))
        for file, names in imports_of(folder).items()
    }
    assert {file: names for file, names in wrong.items() if names} == {}
