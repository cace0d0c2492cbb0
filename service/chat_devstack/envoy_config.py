"""Envoy gateway configuration for ``chat.ChatService``.

Renders a complete, static Envoy (v3 API, checked against Envoy 1.40) bootstrap as JSON text.
Envoy's config loader parses YAML, and JSON is YAML, so the output can be saved as
``envoy.yaml`` and started with ``envoy -c envoy.yaml``.

What the gateway does:

* one listener, HTTP codec ``AUTO``: browsers speak gRPC-Web over HTTP/1.1 (or HTTP/2 over
  TLS) and native gRPC clients speak HTTP/2 on the same port;
* http filters ``grpc_web`` -> ``cors`` -> ``router``; the CORS policy is configured per virtual
  host through ``typed_per_filter_config`` (the deprecated ``VirtualHost.cors`` field is not used);
* two clusters with the same endpoints: ``chat_unary`` (LEAST_REQUEST) for unary calls and
  ``chat_streams`` (RING_HASH) for the long-lived ``Subscribe`` / ``StreamMessages`` streams,
  which hash on the ``authorization`` header (fallback: the client's IP) so that a user's
  streams stick to one pod;
* HTTP/2 (h2c, or h2 over TLS) to the pods, active gRPC health checks, outlier detection,
  circuit breakers raised for many concurrent streams;
* the admin interface on ``127.0.0.1:admin_port`` only (it can stop or drain Envoy), and a
  small second listener ``envoy_stats`` on ``probes_port`` that routes exactly ``/ready`` and
  ``/stats/prometheus`` to it (kubelet probes, Prometheus); it is never published;
* the public listener routes only ``/chat.ChatService/*``; gRPC health (``public_health``) and
  server reflection (``public_reflection``) are opt-in, as is ``chat.ChatBackend``
  (``backend_api``, for a listener only the app's backend reaches); anything else gets 404
  (gRPC: UNIMPLEMENTED) from Envoy itself;
* optionally (``backend_port``) a second listener ``chat_backend`` that routes only
  ``chat.ChatBackend`` (gRPC-Web for clients/php, native gRPC), for a port only the app's
  backend reaches (compose: not published);
* edge limits against slow or greedy clients (see ``deploy/envoy/README.md``): request-header
  timeout, connection and stream idle timeouts, HTTP/2 stream and window limits, buffer limits,
  a global connection limit and the overload manager on a fixed heap budget;
* optionally (``static_upstream``) a plain HTTP/1.1 upstream for everything that is not gRPC
  (requests without an ``application/grpc*`` content type), e.g. the web demo's static files,
  so the page and its gRPC-Web calls share one origin. gRPC routes are unchanged.

The pieces live in :mod:`chat_devstack.envoy` (``options``: names, limits and
:class:`EnvoyOptions`; ``routes``, ``listeners``, ``clusters``); this module assembles them and
is the command line.

Regenerate the compose config with::

    python -m chat_devstack.envoy_config --dns-name chat --dns-port 50051 \\
        --backend-port 8081 --out deploy/envoy/envoy.yaml
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chat_devstack.envoy.clusters import admin_cluster, cluster, static_cluster
from chat_devstack.envoy.listeners import (
    backend_listener,
    listener,
    overload_manager,
    stats_listener,
)
from chat_devstack.envoy.options import (
    ADMIN_CLUSTER,
    ALLOW_HEADERS,
    BACKEND_LISTENER,
    DEFAULT_MAX_HEAP_BYTES,
    EXPOSE_HEADERS,
    JSON,
    LIMITS,
    STATIC_CLUSTER,
    STATS_LISTENER,
    STREAMING_METHODS,
    STREAMS_CLUSTER,
    TRANSFER_METHODS,
    UNARY_CLUSTER,
    EnvoyOptions,
    Upstream,
    socket_address,
)

__all__ = [
    "ADMIN_CLUSTER",
    "ALLOW_HEADERS",
    "BACKEND_LISTENER",
    "DEFAULT_MAX_HEAP_BYTES",
    "EXPOSE_HEADERS",
    "LIMITS",
    "STATIC_CLUSTER",
    "STATS_LISTENER",
    "STREAMING_METHODS",
    "STREAMS_CLUSTER",
    "TRANSFER_METHODS",
    "UNARY_CLUSTER",
    "EnvoyOptions",
    "Upstream",
    "build_config",
    "header",
    "main",
    "render",
]


def build_config(options: EnvoyOptions) -> JSON:
    """The Envoy bootstrap as a dict (see :class:`EnvoyOptions` for what each option does)."""
    clusters = [
        cluster(UNARY_CLUSTER, "LEAST_REQUEST", options),
        cluster(STREAMS_CLUSTER, "RING_HASH", options),
    ]
    if options.static_upstream is not None:
        clusters.append(static_cluster(options.static_upstream))
    clusters.append(admin_cluster(options.admin_port))
    return {
        # Loopback only, always: the admin API can stop (/quitquitquit) or drain Envoy and
        # dumps its config. Probes and Prometheus use the envoy_stats listener instead.
        "admin": {"address": socket_address("127.0.0.1", options.admin_port)},
        "static_resources": {
            "listeners": [
                listener(options),
                *([] if options.backend_port is None
                  else [backend_listener(options, options.backend_port)]),
                stats_listener(options.listen_host, options.probes_port),
            ],
            "clusters": clusters,
        },
        "overload_manager": overload_manager(options.max_heap_bytes, options.max_connections),
    }


def render(options: EnvoyOptions | None = None, /, **fields: Any) -> str:
    """Render the Envoy bootstrap as JSON text (valid YAML, so Envoy loads it as ``.yaml``).

    Takes an :class:`EnvoyOptions`, or its fields as keyword arguments
    (``render(dns_name="chat")`` is ``render(EnvoyOptions(dns_name="chat"))``).
    """
    if options is None:
        options = EnvoyOptions(**fields)
    elif fields:
        raise TypeError("give an EnvoyOptions or keyword arguments, not both")
    return json.dumps(build_config(options), indent=2) + "\n"


def _upstream_arg(text: str) -> Upstream:
    try:
        return Upstream.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _without_out(argv: Sequence[str]) -> list[str]:
    """The command line minus ``--out FILE`` (the header must not depend on where it is written)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def header(argv: Sequence[str]) -> str:
    """YAML comment block naming the command that generated a config."""
    command = shlex.join(["python", "-m", "chat_devstack.envoy_config", *_without_out(argv)])
    return (
        "# GENERATED FILE - do not edit by hand. Regenerate with:\n"
        f"#   {command} --out <this file>\n"
        "# (Envoy config as JSON, which is also YAML; see chat_devstack/envoy_config.py)\n"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m chat_devstack.envoy_config",
        description="Write the Envoy gateway config for chat.ChatService.",
    )
    p.add_argument(
        "--out",
        required=True,
        help="file to write ('-' = stdout); gets a '# GENERATED' header unless it ends in .json",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--dns-name", help="DNS name of the service pods (STRICT_DNS)")
    target.add_argument(
        "--upstream",
        action="append",
        type=_upstream_arg,
        metavar="HOST:PORT",
        help="a static upstream; repeat for several",
    )
    p.add_argument("--dns-port", type=int, default=50051)
    p.add_argument("--listen-host", default="0.0.0.0")
    p.add_argument("--listen-port", type=int, default=8080)
    p.add_argument("--admin-port", type=int, default=9901, help="admin, on 127.0.0.1 only")
    p.add_argument(
        "--probes-port",
        type=int,
        default=9902,
        help="listener serving only /ready and /stats/prometheus (probes, Prometheus)",
    )
    p.add_argument(
        "--public-health",
        action="store_true",
        help="route grpc.health.v1.Health/Check on the public listener (also answers "
        "per-dependency names such as 'redis')",
    )
    p.add_argument(
        "--public-reflection",
        action="store_true",
        help="route gRPC server reflection on the public listener",
    )
    p.add_argument(
        "--backend-api",
        action="store_true",
        help="route chat.ChatBackend (the app backend's API) on this listener; only for a "
        "listener your backend alone can reach",
    )
    p.add_argument(
        "--backend-port",
        type=int,
        help="add a listener on this port that routes only chat.ChatBackend (gRPC-Web and "
        "native gRPC) for your app's backend; never publish it",
    )
    p.add_argument(
        "--max-heap-bytes",
        type=int,
        default=DEFAULT_MAX_HEAP_BYTES,
        help="overload manager heap budget (below the container's memory limit)",
    )
    p.add_argument(
        "--allowed-origin",
        action="append",
        metavar="ORIGIN",
        help="allowed CORS origin (exact, or '*'); repeat for several; default '*'",
    )
    p.add_argument("--tls-cert-file")
    p.add_argument("--tls-key-file")
    p.add_argument("--upstream-tls", action="store_true")
    p.add_argument("--upstream-ca-file")
    p.add_argument(
        "--static-upstream",
        type=_upstream_arg,
        metavar="HOST:PORT",
        help="HTTP/1.1 server for non-gRPC requests (e.g. the web demo's files)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        options = EnvoyOptions(
            listen_host=args.listen_host,
            listen_port=args.listen_port,
            admin_port=args.admin_port,
            probes_port=args.probes_port,
            upstreams=args.upstream,
            dns_name=args.dns_name,
            dns_port=args.dns_port,
            allowed_origins=tuple(args.allowed_origin or ("*",)),
            tls_cert_file=args.tls_cert_file,
            tls_key_file=args.tls_key_file,
            upstream_tls=args.upstream_tls,
            upstream_ca_file=args.upstream_ca_file,
            static_upstream=args.static_upstream,
            public_health=args.public_health,
            public_reflection=args.public_reflection,
            backend_api=args.backend_api,
            backend_port=args.backend_port,
            max_heap_bytes=args.max_heap_bytes,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render(options)
    if not args.out.endswith(".json"):
        text = header(argv) + text
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
