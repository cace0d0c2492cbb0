"""A PostgreSQL streaming replica of a test PostgreSQL server, on loopback: `pg_basebackup -R`
from the primary (whose default pg_hba already admits replication from 127.0.0.1 for its
superuser), then started on a port of its own as a hot standby."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from chat_devstack.ports import free_port
from chat_devstack.postgres import PostgresServer


def start_replica(primary: PostgresServer, base_dir: Path) -> PostgresServer:
    replica = PostgresServer(base_dir, free_port(), user=primary.user,
                             password=primary.password, database=primary.database)
    base_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(base_dir, 0o755)
    cmd = [str(replica._bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
           "-U", primary.user, "-D", str(replica.data_dir), "-R", "-X", "stream",
           "--no-sync"]
    if replica._as_root:
        pg = pwd.getpwnam("postgres")
        os.chown(base_dir, pg.pw_uid, pg.pw_gid)
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120,
                   env={**os.environ, "PGPASSWORD": primary.password})
    replica.start()
    return replica


def psql(server: PostgresServer, sql: str) -> str:
    """Run one statement as the superuser over the server's socket; its output."""
    cmd = [str(server._bin / "psql"), "-h", str(server.data_dir), "-p", str(server.port),
           "-U", server.user, "-d", server.database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
    if server._as_root:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout
