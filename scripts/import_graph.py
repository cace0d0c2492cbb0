"""Print the service's packages, their sizes and which packages each imports (from the source,
with ast; nothing is imported or run).

    .venv/bin/python scripts/import_graph.py                  # this checkout
    .venv/bin/python scripts/import_graph.py --root /tmp/old   # another checkout, to compare

One line per package of service/chat_service: files, lines (the largest file), and the
chat_service packages it imports. Top-level modules (app.py, config.py...) count as packages
of their own. Generated code (gen/) is left out of the sizes.
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path


def package_of(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def graph(root: Path) -> tuple[dict[str, set[str]], dict[str, list[tuple[str, int]]]]:
    base = root / "service" / "chat_service"
    edges: dict[str, set[str]] = defaultdict(set)
    files: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path in sorted(base.rglob("*.py")):
        relative = path.relative_to(base)
        if relative.parts[0] == "gen" or (relative.name == "__init__.py" and len(
            relative.parts
        ) == 1):
            continue
        source = path.read_text(encoding="utf-8")
        package = package_of(relative)
        files[package].append((str(relative), source.count("\n")))
        for node in ast.walk(ast.parse(source)):
            modules: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[0] == "chat_service" and len(parts) > 1 and parts[1] != package:
                    edges[package].add(parts[1])
    return edges, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    edges, files = graph(args.root)
    for package in sorted(files, key=lambda p: (len(files[p]) == 1, p)):
        sizes = files[package]
        largest = max(sizes, key=lambda f: f[1])
        total = sum(n for _, n in sizes)
        imports = ", ".join(sorted(edges.get(package, ()))) or "-"
        print(f"{package:<14} {len(sizes):>3} files {total:>5} lines "
              f"(largest {largest[0]} {largest[1]})  ->  {imports}")


if __name__ == "__main__":
    main()
