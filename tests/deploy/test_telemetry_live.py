"""Telemetry is real: every dashboard query and every alert expression returns data.

A real Prometheus (Debian's `prometheus`, started here on a free loopback port, 1 s scrape
interval) scrapes a local cluster — three service processes and Envoy, `Cluster(pods=3,
with_envoy=True, with_metrics=True)` — the way the chart's ServiceMonitor makes
prometheus-operator scrape it in Kubernetes:

- job `chat` (the chart's fullname for release `chat`: the Service name is the job label) for
  the pods' `/metrics`, job `chat-envoy` for Envoy's admin `/stats/prometheus`;
- target labels `namespace="chat"` and `pod=<name>`, which the ServiceMonitor adds from the
  endpoints and which the dashboards (`namespace="$namespace"`, `by (pod)`) and the alert rules
  (`job="chat",namespace="chat"`, `by (pod)`) select on.

Traffic: groups, subscriptions, ~200 messages, history and listing calls, client errors
(PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT, UNAUTHENTICATED) and, so that the series that
exist only on failure exist too, a short Redis outage (`chat_redis_errors_total{op}`) and a short
PostgreSQL outage during which calls fail with server errors (`code="UNAVAILABLE"`, which the
error-rate alert counts).

Then:

- **Dashboards.** Every `expr` of every target of every panel (rows' nested panels included)
  of deploy/helm/chat/dashboards/*.json is evaluated with `/api/v1/query`. Grafana variables are
  replaced the way Grafana would fill them in: the built-in intervals by fixed values
  (`$__rate_interval` → `1m`, `$__interval` → `15s`, `$__range` → `5m`); a dashboard's query
  variables (`label_values(metric, label)`) are resolved against this Prometheus with
  `/api/v1/label/<label>/values?match[]=<metric>` — the variable's own query must return values
  too — and the value `chat` is used (the first value if `chat` is not among them); custom /
  constant variables take their current or first value. An unknown variable fails the test.
- **Alert rules.** The chart's PrometheusRule is rendered (deploy/prometheus/extract_rules.py)
  and loaded into this Prometheus, which must evaluate every rule without error. Each alert's
  expression is then checked *without its threshold*, so that a healthy system still proves the
  underlying series exist: comparisons with a number at the top level of the expression
  (`X > 0.05`, `up{...} == 0`) are removed, leaving X; an expression combined with `or` is split
  and every operand must return series on its own; an `absent(X)` operand (empty by design when
  healthy) is checked as X.
- An expression fails when Prometheus rejects it, when it returns no series, or when every value
  it returns is NaN (a histogram quantile over no observations).
- **promtool.** `promtool check rules` on the extracted rules file and `promtool test rules` on
  deploy/prometheus/rules-test.yaml (firing and non-firing cases for every alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import yaml

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.processes import terminate, wait_serving
from chat_devstack.tokens import mint
from chat_service.gen import chat_pb2 as pb
from tests.support.chat_client import ChatClient, Subscription, expect_status, gather_limited

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "helm" / "chat" / "dashboards"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"

NAMESPACE = "chat"
CHAT_JOB = "chat"  # fullname of release `chat`: the chat Service, hence the ServiceMonitor job
ENVOY_JOB = "chat-envoy"
SCRAPE_INTERVAL = "1s"

# Grafana's built-in variables, with the values used here.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
SERVER_ERRORS = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}

pytestmark = pytest.mark.timeout(180)


def extract_rules_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chat_extract_rules", PROMETHEUS_DIR / "extract_rules.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` not found: apt-get install prometheus "
                    "(scripts/install-system-deps.sh installs it)")
    return found


# ---------------------------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, workdir: Path, cluster: Cluster, rules_file: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
            "rule_files": [str(rules_file)],
            "scrape_configs": [
                {
                    "job_name": CHAT_JOB,
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{svc.metrics_port}"],
                            "labels": {"namespace": NAMESPACE, "pod": svc.name},
                        }
                        for svc in cluster.services
                    ],
                },
                {
                    "job_name": ENVOY_JOB,
                    "metrics_path": "/stats/prometheus",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{cluster.envoy_admin_port}"],
                            "labels": {"namespace": NAMESPACE, "pod": "chat-envoy-0"},
                        }
                    ],
                },
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={self.config_path}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as reply,
            ):
                if reply.status == 200:
                    return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        terminate(self.proc)

    def api(self, path: str, **params: str | list[str]) -> Any:
        """GET /api/v1/<path>; returns `data`, raises ValueError with Prometheus' error."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_scraped_after(self, moment: float, scrapes: int = 2, timeout: float = 20) -> None:
        """Every target (3 pods, Envoy) was scraped successfully `scrapes` intervals after
        `moment` (unix time), so counters created just before have at least two samples."""
        expr = f"timestamp(up) > {moment + scrapes} and up == 1"
        deadline = time.monotonic() + timeout
        while len(self.query(expr)) < 4:
            if time.monotonic() > deadline:
                targets = self.api("targets")["activeTargets"]
                raise AssertionError(f"targets not scraped: {json.dumps(targets, indent=1)}")
            time.sleep(0.25)


# ---------------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------------


class Phases:
    """Durations of the fixture's steps (printed with -s; shown when a test fails)."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}
        self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.durations[name] = round(now - self._last, 1)
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v}s" for k, v in self.durations.items())


def make_users(cluster: Cluster, channel: grpc.aio.Channel, first: int, n: int) -> list[ChatClient]:
    return [
        ChatClient(channel, mint(cluster.jwt_secret, uid, name=f"u{uid}"), uid)
        for uid in range(first, first + n)
    ]


async def drive_traffic(cluster: Cluster, channel: grpc.aio.Channel, phases: Phases) -> None:
    """Normal use, client errors, then a Redis and a PostgreSQL outage (server errors)."""
    users = make_users(cluster, channel, 7_000_001, 6)
    owner, others = users[0], users[1:]
    groups = [
        await owner.create_group(f"g{i}", members=[u.user_id for u in others])
        for i in range(3)
    ]
    subs: list[Subscription] = [await u.subscribe() for u in users]
    try:
        sends = [
            users[i % len(users)].send(groups[i % len(groups)].id, f"message {i}")
            for i in range(200)
        ]
        await gather_limited(sends, limit=16)
        phases.done("200 sends")
        # Fan-out really happened: every subscriber has every message.
        for sub in subs:
            await sub.wait_messages(200, timeout=30)
        phases.done("fan-out")
        for group in groups:
            await owner.history(group.id, limit=50)
            await others[0].all_history(group.id, page=40)
            await others[1].typing(group.id)
            await owner.members(group.id)
            await owner.get_group(group.id)
        await owner.my_groups()

        # Client errors.
        await expect_status(
            grpc.StatusCode.PERMISSION_DENIED,
            owner.stub.CreateGroup(
                pb.CreateGroupRequest(name="x", created_by=others[0].user_id),
                metadata=owner.metadata,
            ),
        )
        await expect_status(grpc.StatusCode.NOT_FOUND, owner.get_group(987_654_321))
        await expect_status(grpc.StatusCode.INVALID_ARGUMENT, owner.send(groups[0].id, ""))
        stranger = ChatClient(channel, mint("wrong-secret-" + "x" * 32, 1), 1)
        await expect_status(grpc.StatusCode.UNAUTHENTICATED, stranger.my_groups())
        phases.done("reads and client errors")

        slowest = await redis_outage(cluster, owner, groups[0].id)
        phases.done(f"redis outage (slowest send {slowest:.1f}s)")
        # The sends of the outage were never published: every subscriber gets them from the
        # hub's gap fill (PostgreSQL), which counts them in chat_gap_fills_total.
        for sub in subs:
            await sub.wait_until(functools.partial(has_outage_texts, sub, groups[0].id), 30)
        phases.done("outage messages gap-filled")
    finally:
        for sub in subs:
            await sub.close()
    await postgres_outage(cluster)
    phases.done("postgres outage")


async def open_streams(cluster: Cluster, channel: grpc.aio.Channel) -> list[Subscription]:
    """After the outages: the cluster serves again through Envoy; three subscribers stay
    connected while Prometheus scrapes (chat_open_streams is then 3, not 0)."""
    for svc in cluster.services:  # Envoy routes no health checks: ask the pods themselves
        await asyncio.to_thread(wait_serving, svc.address, 30, "chat.ChatService")
    owner, *members = make_users(cluster, channel, 7_100_001, 4)
    deadline = time.monotonic() + 30
    while True:  # until Envoy's own health checks have taken the pods back
        try:
            group = await owner.create_group("after outages",
                                             members=[m.user_id for m in members])
            break
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    subs = [await m.subscribe() for m in members]
    await owner.send(group.id, "back to normal")
    for sub in subs:
        await sub.wait_messages(1, group.id, timeout=20)
    return subs


OUTAGE_TEXTS = {f"during redis outage {i}" for i in range(3)}


def has_outage_texts(sub: Subscription, group_id: int) -> bool:
    return {m.content for m in sub.messages(group_id)} >= OUTAGE_TEXTS


async def redis_outage(cluster: Cluster, sender: ChatClient, group_id: int) -> float:
    """Every pod's broker read fails (op="read"), sends fail to publish (op="publish") but are
    still acknowledged (PostgreSQL is the acknowledgement). Returns the slowest send's time."""
    assert cluster.redis is not None
    await asyncio.to_thread(cluster.redis.stop)

    async def timed_send(i: int) -> float:
        started = time.monotonic()
        await sender.send(group_id, sorted(OUTAGE_TEXTS)[i])
        return time.monotonic() - started

    try:
        await asyncio.sleep(0.5)
        return max(await asyncio.gather(*(timed_send(i) for i in range(3))))
    finally:
        await asyncio.to_thread(cluster.redis.start)


async def postgres_outage(cluster: Cluster) -> None:
    """Calls straight to each pod while PostgreSQL is down fail with a server error."""
    assert cluster.postgres is not None
    await asyncio.to_thread(cluster.postgres.stop)
    try:
        for svc in cluster.services:
            async with grpc.aio.insecure_channel(svc.address) as channel:
                client = ChatClient(channel, mint(cluster.jwt_secret, 7_000_001), 7_000_001)
                for _ in range(3):
                    try:
                        await client.stub.ListMyGroups(
                            pb.ListMyGroupsRequest(), metadata=client.metadata, timeout=5
                        )
                    except grpc.aio.AioRpcError as exc:
                        assert exc.code() in SERVER_ERRORS, exc
                    else:
                        raise AssertionError(f"{svc.name} answered without PostgreSQL")
    finally:
        await asyncio.to_thread(cluster.postgres.start)
    for svc in cluster.services:
        await asyncio.to_thread(wait_serving, svc.address, 30)


# ---------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------


def dashboard_targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every target, rows' nested panels (and the old `rows`) included."""

    def walk(panels: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield panel.get("title", "?"), str(target["expr"])
            yield from walk(panel.get("panels", []))

    yield from walk(dashboard.get("panels", []))
    for row in dashboard.get("rows", []):
        yield from walk(row.get("panels", []))


_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w]+)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*$")


def resolve_variables(dashboard: dict[str, Any], prom: Prometheus) -> dict[str, str]:
    """A value for each templating variable, as Grafana would offer it against `prom`."""
    values = dict(BUILTIN_VARIABLES)
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var["name"], var.get("type")
        if kind == "datasource":
            continue
        if kind == "query":
            query = var.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            text = _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2) or m.group(3),
                                                      m.group(0)), text)
            match = _LABEL_VALUES.match(text)
            assert match, f"variable ${name}: unsupported query {text!r}"
            selector, label = match.groups()
            params: dict[str, str | list[str]] = {"match[]": [selector]} if selector else {}
            found: list[str] = prom.api(f"label/{label}/values", **params)
            assert found, f"variable ${name}: {text} returned no values"
            values[name] = NAMESPACE if NAMESPACE in found else found[0]
        else:  # custom, constant, textbox, interval
            current = var.get("current", {}).get("value")
            options = [o["value"] for o in var.get("options", []) if "value" in o]
            fallback = str(var.get("query", "")).split(",")[0].strip()
            value = current if isinstance(current, str) else (options or [fallback])[0]
            values[name] = str(value)
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"unknown variable ${name}")
        return values[name]

    return _VARIABLE.sub(one, expr)


def _top_level_mask(expr: str) -> str:
    """`expr` with everything inside (), {}, [] and string literals replaced by '_' (same
    length), so that operators found in the mask are at the top level of the expression."""
    out: list[str] = []
    depth = 0
    quote = ""
    escaped = False
    for ch in expr:
        if quote:
            out.append("_")
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
            out.append("_")
        elif ch in "({[":
            depth += 1
            out.append("_")
        elif ch in ")}]":
            depth -= 1
            out.append("_")
        else:
            out.append(ch if depth == 0 else "_")
    return "".join(out)


_THRESHOLD = re.compile(
    r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?=\s|$)"
)
_OR = re.compile(r"\bor\b")
_ABSENT = re.compile(r"^\s*absent(?:_over_time)?\s*\((.*)\)\s*$", re.S)


def without_thresholds(expr: str) -> list[str]:
    """The series-producing parts of an alert expression (see the module docstring)."""
    mask = _top_level_mask(expr)
    kept, last = [], 0
    for match in _THRESHOLD.finditer(mask):
        kept.append(expr[last:match.start()])
        last = match.end()
    kept.append(expr[last:])
    stripped = "".join(kept)
    mask = _top_level_mask(stripped)
    parts, last = [], 0
    for match in _OR.finditer(mask):
        parts.append(stripped[last:match.start()])
        last = match.end()
    parts.append(stripped[last:])
    out = []
    for part in parts:
        absent = _ABSENT.match(part)
        out.append((absent.group(1) if absent else part).strip())
    return out


def check_expr(prom: Prometheus, expr: str) -> str | None:
    """None when `expr` returns at least one series with a number; else the problem."""
    try:
        result = prom.query(expr)
    except ValueError as exc:
        return f"error: {exc}"
    if not result:
        return "no series"
    if all(math.isnan(float(r["value"][1])) for r in result):
        return f"only NaN ({len(result)} series)"
    return None


# ---------------------------------------------------------------------------------------------
# Fixture and tests
# ---------------------------------------------------------------------------------------------


@dataclass
class Live:
    cluster: Cluster
    prometheus: Prometheus
    rules: list[dict[str, Any]]
    phases: Phases


@pytest.fixture(scope="module")
async def live() -> AsyncIterator[Live]:
    binary("prometheus")
    phases = Phases()
    workdir = Path(tempfile.mkdtemp(prefix="chat-telemetry-"))
    rules_file = extract_rules_module().write_rules(workdir)
    rules = [r for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]]
    cluster = Cluster(pods=3, with_envoy=True, with_metrics=True)
    prometheus: Prometheus | None = None
    try:
        await asyncio.to_thread(cluster.start)
        phases.done("cluster start")
        started = time.time()
        prometheus = await asyncio.to_thread(Prometheus(workdir, cluster, rules_file).start)
        # Prometheus applies new targets on a 5 s tick: wait for the first scrape of every
        # target, so that the traffic below shows up as rates, not as initial values.
        await asyncio.to_thread(prometheus.wait_scraped_after, started, 0)
        phases.done("prometheus first scrape")
        async with grpc.aio.insecure_channel(cluster.gateway) as channel:
            await drive_traffic(cluster, channel, phases)
            streams = await open_streams(cluster, channel)
            phases.done("recovered, streams open")
            try:
                await asyncio.to_thread(prometheus.wait_scraped_after, time.time())
                phases.done("scrapes after traffic")
                print(f"\ntelemetry fixture: {phases}")
                yield Live(cluster, prometheus, rules, phases)
            finally:
                for sub in streams:
                    await sub.close()
    finally:
        if prometheus is not None:
            prometheus.stop()
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(workdir, ignore_errors=True)


def test_every_dashboard_query_returns_series(live: Live) -> None:
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files
    failures: list[str] = []
    checked = 0
    for path in files:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        values = resolve_variables(dashboard, live.prometheus)
        for title, raw in dashboard_targets(dashboard):
            expr = substitute(raw, values)
            assert "$" not in expr and "[[" not in expr, expr
            checked += 1
            problem = check_expr(live.prometheus, expr)
            if problem:
                failures.append(f"{path.name} / {title}: {problem}\n    {expr}")
    assert checked >= 10, checked
    assert not failures, f"dashboard queries without data ({live.phases}):\n" + "\n".join(
        failures
    )


def test_metrics_match_the_traffic(live: Live) -> None:
    """The numbers are the traffic's: 200 + 3 (during the Redis outage) + 1 messages, the three
    subscribers still connected, the client and server errors by code, Envoy's requests."""

    def value(expr: str) -> float:
        result = live.prometheus.query(expr)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])

    assert value("sum(chat_messages_accepted_total)") == 204
    assert value('sum(chat_open_streams{rpc="Subscribe"})') == 3
    codes = {
        r["metric"]["code"]: float(r["value"][1])
        for r in live.prometheus.query("sum by (code) (chat_rpc_requests_total)")
    }
    for code in ("OK", "PERMISSION_DENIED", "NOT_FOUND", "INVALID_ARGUMENT", "UNAUTHENTICATED"):
        assert codes.get(code, 0) >= 1, codes
    assert codes.get("UNAVAILABLE", 0) >= 9, codes  # 3 calls x 3 pods without PostgreSQL
    assert value('sum(up{job=~"chat|chat-envoy"})') == 4
    # The 3 outage messages, filled for the subscribers of the 3 pods that hold them.
    assert value('sum(chat_gap_fills_total{where="hub"})') >= 3
    assert value('sum(envoy_cluster_upstream_rq_total{envoy_cluster_name="chat_unary"})') >= 204


def test_every_alert_expression_has_its_series(live: Live) -> None:
    failures: list[str] = []
    for rule in live.rules:
        parts = without_thresholds(rule["expr"])
        assert all(parts), (rule["expr"], parts)
        for part in parts:
            problem = check_expr(live.prometheus, part)
            if problem:
                failures.append(f"{rule['alert']}: {problem}\n    {part}")
    assert not failures, f"alert expressions without data ({live.phases}):\n" + "\n".join(
        failures
    )


def test_prometheus_evaluates_the_rules_without_errors(live: Live) -> None:
    deadline = time.monotonic() + 10
    while True:
        loaded = [r for g in live.prometheus.api("rules")["groups"] for r in g["rules"]]
        # Rules not evaluated yet have lastEvaluation 0001-01-01T00:00:00Z.
        if loaded and not any(r.get("lastEvaluation", "0001").startswith("0001") for r in loaded):
            break
        assert time.monotonic() < deadline, loaded
        time.sleep(0.5)
    assert {r["name"] for r in loaded} == {r["alert"] for r in live.rules}
    for rule in loaded:
        assert rule["health"] == "ok", rule
        assert not rule.get("lastError"), rule
    # All pods are up, so the availability alerts are quiet.
    states = {r["name"]: r["state"] for r in loaded}
    assert states["ChatPodDown"] == states["ChatAllPodsDown"] == "inactive", states


def test_threshold_stripping() -> None:
    """The reduction the alert test relies on."""
    assert without_thresholds('up{job="chat"} == 0') == ['up{job="chat"}']
    assert without_thresholds(
        'sum(up{a="1"}) == 0 or absent(up{a="1"})'
    ) == ['sum(up{a="1"})', 'up{a="1"}']
    assert without_thresholds(
        'histogram_quantile(0.99, sum by (le) (rate(x{m!~".*(A|B)"}[5m])))\n  > 0.5\n'
    ) == ['histogram_quantile(0.99, sum by (le) (rate(x{m!~".*(A|B)"}[5m])))']
    assert without_thresholds("sum(rate(a[5m])) / sum(rate(b[5m])) > 5e-2") == [
        "sum(rate(a[5m])) / sum(rate(b[5m]))"
    ]
    assert without_thresholds('x{l=">1"} > bool 3') == ['x{l=">1"}']  # comparisons in strings
    assert without_thresholds("a > b") == ["a > b"]  # not a threshold: both sides are series


def test_promtool_checks_and_unit_tests_the_rules(tmp_path: Path) -> None:
    binary("promtool")
    result = extract_rules_module().check(extract_rules_module().write_rules(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout
    # Every alert has a firing and a non-firing case in the unit tests.
    tests = yaml.safe_load((PROMETHEUS_DIR / "rules-test.yaml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    alerts = {r["alert"] for g in yaml.safe_load(
        (tmp_path / "chat-rules.yaml").read_text())["groups"] for r in g["rules"]}
    for alert in alerts:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in mine), f"{alert}: no firing case"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert}: no non-firing case"
