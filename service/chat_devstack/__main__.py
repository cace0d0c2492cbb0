"""Local development commands.

  python -m chat_devstack dev       PostgreSQL + Redis on throwaway dirs, migrations, and the
                                    service in the foreground on 127.0.0.1:$GRPC_PORT (50051)
  python -m chat_devstack cluster   PostgreSQL, Redis, 3 service processes and Envoy (which
                                    also serves the web demo, clients/web/dist, when built)
  python -m chat_devstack token     print a dev JWT (HS256 with $JWT_SECRET)
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port, preferred_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.processes import run_migrations
from chat_devstack.redis import RedisServer
from chat_devstack.tokens import DEV_BACKEND_JWT_SECRET, DEV_JWT_SECRET, mint


def _secret() -> str:
    return os.environ.get("JWT_SECRET") or DEV_JWT_SECRET


ROOT = Path(__file__).resolve().parents[2]


def _shown(path: Path) -> str:
    """`path` as a command line shows it: relative when under the current directory (a
    `.venv/bin/...` run from the repository root), absolute otherwise; either works as printed."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _venv_bin(name: str) -> str:
    # Not resolved: .venv/bin/python is a symlink to the system interpreter.
    return _shown(Path(sys.executable).absolute().parent / name)


def _token_help(secret: str, target: str, *, reflection: bool = True) -> str:
    """What to run next, one shell command per indented line, each working as printed (from the
    directory the launcher was started in). The mint command carries the secret when it is not
    the development default, so it signs tokens this server accepts."""
    env = "" if secret == DEV_JWT_SECRET else f"JWT_SECRET={shlex.quote(secret)} "
    grpcurl = f"{_venv_bin('grpcurl')} -plaintext"
    if not reflection:  # Envoy routes only chat.ChatService: give grpcurl the proto file
        grpcurl += f" -import-path {shlex.quote(_shown(ROOT / 'proto'))} -proto chat.proto"
    return (
        f"JWT secret (HS256): {secret}\n"
        "Try it (mint a token, then call with grpcurl or the chat CLI):\n"
        f"  export TOKEN=$({env}{_venv_bin('chat')} token --user 1 --name Alice)\n"
        f"  {grpcurl} -H \"authorization: Bearer $TOKEN\" {target} chat.ChatService/ListMyGroups\n"
        f"  {_venv_bin('chat')} --server {target} --token \"$TOKEN\" groups\n"
    )


class _Stop(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled like Ctrl-C: everything started is stopped and removed."""


def _stop_on_signals() -> None:
    """Turn SIGTERM and SIGHUP (a supervisor, a closing terminal, `kill` of the process group)
    into the Ctrl-C path. Later ones are ignored so that the clean-up they started finishes."""

    def handler(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def dev() -> int:
    _stop_on_signals()
    base = Path(tempfile.mkdtemp(prefix="chat-dev-"))
    pg: PostgresServer | None = None
    redis: RedisServer | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        os.chmod(base, 0o755)  # the postgres user must be able to reach its data directory
        pg_port = int(os.environ.get("DB_PORT") or free_port())
        redis_port = int(os.environ.get("REDIS_PORT") or free_port())
        grpc_port = int(os.environ.get("GRPC_PORT") or 50051)
        metrics_port = int(os.environ.get("METRICS_PORT") or preferred_port(9464))
        secret = _secret()
        print(f"starting PostgreSQL on 127.0.0.1:{pg_port} and Redis on 127.0.0.1:{redis_port} "
              f"(data in {base}, removed on exit)", flush=True)
        pg = PostgresServer(base / "pg", pg_port)
        pg.setup()
        redis = RedisServer(base / "redis", redis_port).start()
        host = os.environ.get("GRPC_HOST", "127.0.0.1")
        metrics_host = "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host
        env = {
            "GRPC_HOST": host,
            "GRPC_PORT": str(grpc_port),
            "METRICS_PORT": str(metrics_port),
            "JWT_SECRET": secret,
            # The backend API's key (`chat token --backend` mints with the same default).
            "BACKEND_JWT_SECRET": os.environ.get("BACKEND_JWT_SECRET") or DEV_BACKEND_JWT_SECRET,
            "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
            **pg.env,
            **redis.env,
        }
        run_migrations(env)
        print(f"\nchat service on 127.0.0.1:{grpc_port}\n"
              f"Metrics:            http://{metrics_host}:{metrics_port}/metrics\n"
              f"{_token_help(secret, f'127.0.0.1:{grpc_port}')}"
              "Ctrl-C stops everything.\n", flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "chat_service"],
                                env={**os.environ, **env})
        return proc.wait()
    except KeyboardInterrupt:
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            return proc.wait()
        return 130
    finally:
        try:
            if redis is not None:
                redis.stop()
        finally:
            try:
                if pg is not None:
                    pg.destroy()
            finally:
                shutil.rmtree(base, ignore_errors=True)


WEB_DIST = ROOT / "clients" / "web" / "dist"


def cluster(pods: int, web: Path | None = None) -> int:
    _stop_on_signals()
    if web is None and (WEB_DIST / "index.html").is_file():
        web = WEB_DIST
    c = Cluster(
        pods=pods, jwt_secret=_secret(), with_metrics=True, rate_limits=True, web_root=web
    )
    # The README, the PHP client and the web demo assume 8080; another port when it is taken.
    c.envoy_port = int(os.environ.get("ENVOY_PORT") or preferred_port(8080))
    try:
        c.start()  # stops what it started when interrupted
        print("local cluster is up:\n" + c.describe(), flush=True)
        print(_token_help(c.jwt_secret, c.gateway, reflection=False)
              + "Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chat_devstack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev")
    c = sub.add_parser("cluster")
    c.add_argument("--pods", type=int, default=3)
    c.add_argument("--web", type=Path, default=None,
                   help="static files served through Envoy (default: clients/web/dist if built)")
    t = sub.add_parser("token")
    t.add_argument("--user", type=int, required=True)
    t.add_argument("--name", default="")
    t.add_argument("--ttl", type=int, default=3600 * 12)
    args = parser.parse_args(argv)
    if args.command == "dev":
        return dev()
    if args.command == "cluster":
        return cluster(args.pods, args.web)
    print(mint(_secret(), args.user, name=args.name, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
