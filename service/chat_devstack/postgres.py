"""A throwaway PostgreSQL server from the Debian binaries, on a loopback port.

initdb and pg_ctl refuse to run as root; when we are root they run as the `postgres` user
on a data directory it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from chat_devstack.ports import wait_for_port


def pg_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        raise RuntimeError(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; "
            "install them with: apt-get install -y postgresql"
        )
    return Path(found[-1])


class PostgresServer:
    def __init__(
        self,
        base_dir: Path,
        port: int,
        *,
        user: str = "chat",
        password: str = "chat",
        database: str = "chat",
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.data_dir = base_dir / "pgdata"
        self.log_file = base_dir / "postgres.log"
        self._bin = pg_bin_dir()
        self._as_root = os.geteuid() == 0

    @property
    def env(self) -> dict[str, str]:
        """The service's DB_* settings for this server."""
        return {
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(self.port),
            "DB_DATABASE": self.database,
            "DB_USERNAME": self.user,
            "DB_PASSWORD": self.password,
        }

    def _run(self, *args: str) -> None:
        cmd = [str(self._bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}")

    def init(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self.data_dir.mkdir()
        if self._as_root:
            pg = pwd.getpwnam("postgres")
            for path in (self.data_dir, pwfile):
                os.chown(path, pg.pw_uid, pg.pw_gid)
            self.log_file.touch()
            os.chown(self.log_file, pg.pw_uid, pg.pw_gid)
        self._run(
            "initdb",
            "-D", str(self.data_dir),
            "-U", self.user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E", "UTF8",
            "--no-sync",
        )
        pwfile.unlink()

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
            "-c max_connections=300 -c shared_buffers=256MB -c synchronous_commit=on "
            "-c fsync=on"
        )
        self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", "60", "-o", opts,
        )
        wait_for_port(self.port)

    def create_database(self) -> None:
        cmd = [
            str(self._bin / "psql"), "-h", str(self.data_dir), "-p", str(self.port),
            "-U", self.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            "-c", f'CREATE DATABASE "{self.database}"',
        ]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def setup(self) -> PostgresServer:
        """init + start + create the database."""
        self.init()
        self.start()
        self.create_database()
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w")

    def restart(self) -> None:
        self.stop()
        time.sleep(0.1)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
