"""Minimal `helm template` / `helm lint` on top of helm-python-sdk (no helm binary needed).

    python scripts/helm.py template deploy/helm/chat [-f values.yaml ...] [--set k=v ...]
        [--set-string k=v ...] [--name chat] [--namespace chat]
    python scripts/helm.py lint deploy/helm/chat [-f values.yaml ...] [--set k=v ...] [--strict]

`template` prints the rendered manifests as one multi-document YAML stream (like `helm
template`, hooks and tests included); `lint` prints the findings and exits 1 on errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import helm_python as helm
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("helm-python-sdk is not installed: pip install helm-python-sdk")

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (maps merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            out[key] = merge(current, value)
        else:
            out[key] = value
    return out


def collect_values(
    files: Sequence[str], sets: Sequence[str], set_strings: Sequence[str]
) -> dict[str, Any]:
    """Values from -f files, then --set, then --set-string, later ones winning (as helm does)."""
    values: dict[str, Any] = {}
    for name in files:
        loaded = helm.values_from_yaml(Path(name).read_text(encoding="utf-8"))
        values = merge(values, loaded or {})
    for expr in sets:
        values = merge(values, helm.parse_set_string(expr))
    for expr in set_strings:
        values = merge(values, helm.parse_set_string_values(expr))
    return values


def render(
    chart: str, values: dict[str, Any], *, name: str = "chat", namespace: str = "chat"
) -> dict[str, str]:
    """Render ``chart``; returns {template path: manifest text}, empty documents dropped."""
    with helm.Chart.load(chart) as loaded:
        manifests = loaded.render(values, name=name, namespace=namespace, is_install=True)
    return {path: text for path, text in sorted(manifests.items()) if text.strip()}


def to_stream(manifests: dict[str, str]) -> str:
    """Join rendered templates into one YAML stream, each headed by its source path."""
    parts = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        body = text.strip("\n")
        if not body.startswith("---"):
            body = "---\n" + body
        parts.append(body.replace("---", f"---\n# Source: {path}", 1))
    return "\n".join(parts) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/helm.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("template", "lint"):
        p = sub.add_parser(command)
        p.add_argument("chart", help="chart directory or .tgz")
        p.add_argument("-f", "--values", action="append", default=[], metavar="FILE")
        p.add_argument("--set", action="append", default=[], metavar="K=V")
        p.add_argument("--set-string", action="append", default=[], metavar="K=V")
        p.add_argument("--namespace", "-n", default="chat")
        if command == "template":
            p.add_argument("--name", default="chat", help="release name")
            p.add_argument("--notes", action="store_true", help="print NOTES.txt to stderr")
        else:
            p.add_argument("--strict", action="store_true", help="warnings fail too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        values = collect_values(args.values, args.set, args.set_string)
        if args.command == "template":
            manifests = render(args.chart, values, name=args.name, namespace=args.namespace)
            sys.stdout.write(to_stream(manifests))
            if args.notes:
                for path, text in manifests.items():
                    if path.endswith("NOTES.txt"):
                        sys.stderr.write(text + "\n")
            return 0
        report = helm.lint(args.chart, values, strict=args.strict, namespace=args.namespace)
    except helm.HelmError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    failed = bool(report.get("errors"))
    for msg in report.get("messages") or []:
        severity = SEVERITY.get(int(msg.get("severity", 0)), "UNKNOWN")
        print(f"[{severity}] {msg.get('path', '')}: {msg.get('error', '')}")
        failed = failed or severity == "ERROR" or (args.strict and severity == "WARNING")
    for err in report.get("errors") or []:
        print(f"[ERROR] {err}")
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {'failed' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
