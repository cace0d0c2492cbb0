"""Extract the chart's alert rules into a plain Prometheus rules file, and check them.

The chart ships its alerts as a PrometheusRule (prometheus-operator CRD); Prometheus and
promtool read plain rule files. This renders the chart through the Helm SDK (like
scripts/helm.py), takes `spec.groups` of the PrometheusRule and writes them as a rules file.

    python deploy/prometheus/extract_rules.py [-f VALUES] [--out DIR] [--check]

Defaults: values deploy/helm/chat/ci/ha-values.yaml (monitoring enabled), release `chat` in
namespace `chat`, so the selectors are `job="chat",namespace="chat"` — the labels the unit tests
in rules-test.yaml (and tests/deploy/test_telemetry_live.py) use. Writes DIR/chat-rules.yaml
(DIR defaults to a temporary directory, printed). `--check` then runs `promtool check rules` on
it and `promtool test rules` on a copy of rules-test.yaml placed next to it (promtool resolves
`rule_files` relative to the test file); the exit status is promtool's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHART = ROOT / "deploy" / "helm" / "chat"
DEFAULT_VALUES = CHART / "ci" / "ha-values.yaml"
RULES_FILE = "chat-rules.yaml"
TEST_FILE = HERE / "rules-test.yaml"


def rule_groups(
    values_file: Path = DEFAULT_VALUES, *, name: str = "chat", namespace: str = "chat"
) -> list[dict[str, Any]]:
    """`spec.groups` of the chart's PrometheusRule rendered with `values_file`."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import helm  # type: ignore[import-not-found]  # scripts/helm.py

        values = helm.collect_values([str(values_file)], [], [])
        manifests = helm.render(str(CHART), values, name=name, namespace=namespace)
    finally:
        sys.path.pop(0)
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
                groups: list[dict[str, Any]] = doc["spec"]["groups"]
                return groups
    raise SystemExit(f"no PrometheusRule rendered with {values_file} (metrics.prometheusRule)")


def write_rules(out_dir: Path, values_file: Path = DEFAULT_VALUES) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RULES_FILE
    path.write_text(yaml.safe_dump({"groups": rule_groups(values_file)}, sort_keys=False))
    return path


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise SystemExit("promtool not found: apt-get install prometheus "
                         "(scripts/install-system-deps.sh)")
    return found


def check(rules: Path) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` then `promtool test rules` (output of both, first failure wins)."""
    shutil.copy(TEST_FILE, rules.parent / TEST_FILE.name)
    checked = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        return checked
    tested = subprocess.run(
        [promtool(), "test", "rules", TEST_FILE.name],
        cwd=rules.parent, capture_output=True, text=True, check=False,
    )
    tested.stdout = checked.stdout + tested.stdout
    return tested


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--values", type=Path, default=DEFAULT_VALUES)
    parser.add_argument("--out", type=Path, help="directory for chat-rules.yaml")
    parser.add_argument("--check", action="store_true", help="run promtool check + test")
    args = parser.parse_args(argv)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="chat-rules-"))
    path = write_rules(out_dir, args.values)
    print(path)
    if not args.check:
        return 0
    result = check(path)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
