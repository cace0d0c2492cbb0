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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chat_devstack.cluster import Cluster
from chat_devstack.ports import free_port
from chat_devstack.postgres import PostgresServer
from chat_devstack.processes import run_migrations
from chat_devstack.redis import RedisServer
from chat_devstack.tokens import DEV_JWT_SECRET, mint


def _secret() -> str:
    return os.environ.get("JWT_SECRET") or DEV_JWT_SECRET


def _token_help(secret: str, target: str) -> str:
    return (
        f"JWT secret (HS256): {secret}\n"
        "Mint a token:       .venv/bin/python -m chat_devstack token --user 1 --name Alice\n"
        f"Try it:             grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" "
        f"{target} chat.ChatService/ListMyGroups"
    )


def dev() -> int:
    base = Path(tempfile.mkdtemp(prefix="chat-dev-"))
    os.chmod(base, 0o755)  # the postgres user must be able to reach its data directory
    pg_port = int(os.environ.get("DB_PORT") or free_port())
    redis_port = int(os.environ.get("REDIS_PORT") or free_port())
    grpc_port = int(os.environ.get("GRPC_PORT") or 50051)
    secret = _secret()
    print(f"starting PostgreSQL on 127.0.0.1:{pg_port} and Redis on 127.0.0.1:{redis_port} "
          f"(data in {base})", flush=True)
    pg = PostgresServer(base / "pg", pg_port).setup()
    redis = RedisServer(base / "redis", redis_port).start()
    env = {
        "GRPC_HOST": os.environ.get("GRPC_HOST", "127.0.0.1"),
        "GRPC_PORT": str(grpc_port),
        "JWT_SECRET": secret,
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "text"),
        **pg.env,
        **redis.env,
    }
    try:
        run_migrations(env)
        print(f"\nchat service on 127.0.0.1:{grpc_port}\n"
              f"{_token_help(secret, f'127.0.0.1:{grpc_port}')}\n", flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "chat_service"],
                                env={**os.environ, **env})
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)
            return proc.wait()
    finally:
        redis.stop()
        pg.destroy()


WEB_DIST = Path(__file__).resolve().parents[2] / "clients" / "web" / "dist"


def cluster(pods: int, web: Path | None = None) -> int:
    if web is None and (WEB_DIST / "index.html").is_file():
        web = WEB_DIST
    c = Cluster(
        pods=pods, jwt_secret=_secret(), with_metrics=True, rate_limits=True, web_root=web
    )
    if os.environ.get("ENVOY_PORT"):
        c.envoy_port = int(os.environ["ENVOY_PORT"])
    c.start()
    print("local cluster is up:\n" + c.describe())
    print(_token_help(c.jwt_secret, c.gateway) + "\nCtrl-C stops everything.", flush=True)
    try:
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
