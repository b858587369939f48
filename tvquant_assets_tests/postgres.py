"""A throwaway PostgreSQL 15 server for tests: initdb + pg_ctl in a temp dir on a free loopback port."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PG_BIN = Path(os.environ.get("TVQUANT_PG_BIN", "/usr/lib/postgresql/15/bin"))


INSTANCE_STORAGE_YAML = """
storage:
  postgres:
    postgres_db:
      hostname: {host}
      port: {port}
      username: {user}
      password:
        env: {password_env}
      db_name: {db}
telemetry:
  enabled: false
"""


def instance_yaml(host: str, port: int, user: str, db: str, password_env: str, extra: str = "") -> str:
    """A dagster.yaml with PostgreSQL storage (password from ``password_env``) plus ``extra`` YAML."""
    return INSTANCE_STORAGE_YAML.format(host=host, port=port, user=user, db=db, password_env=password_env) + extra


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server(user: str = "tvquant", database: str = "dagster"):
    """Yield ``(host, port, user, database)`` of a running server in a fresh temp dir; stop it, kill its
    process group and remove the dir."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 not found in {PG_BIN}; run .ci/run (installs postgresql-15) or set "
                           "TVQUANT_PG_BIN")
    base = Path(tempfile.mkdtemp(prefix="tvquant-pg-"))  # directly under /tmp: reachable by the server account
    try:
        with _server(base, user, database) as address:
            yield address
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _pg(args: list, run_as: dict) -> None:
    done = subprocess.run(args, capture_output=True, text=True, **run_as)
    if done.returncode:
        raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


@contextmanager
def _server(base: Path, user: str, database: str):
    run_as = {}
    if os.geteuid() == 0:  # postgres refuses to run as root: use the postgres (or nobody) account
        account = next((a for a in ("postgres", "nobody") if _has_user(a)), None)
        run_as = {"user": account}
        shutil.chown(base, user=account)
    data, port = base / "data", free_port()
    _pg([PG_BIN / "initdb", "-D", data, "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"], run_as)
    options = f"-p {port} -h 127.0.0.1 -k {base} -F -c max_connections=100"
    _pg([PG_BIN / "pg_ctl", "-D", data, "-o", options, "-l", base / "server.log", "-w", "-t", "60", "start"],
        run_as)
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    try:
        _create_database(port, user, database)
        yield "127.0.0.1", port, user, database
    finally:
        subprocess.run([PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "20", "stop"],
                       capture_output=True, **run_as)
        _kill_group(pid)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _create_database(port: int, user: str, database: str) -> None:
    import psycopg2

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    conn.close()


def _kill_group(pid: int) -> None:
    """pg_ctl starts the server in its own session; kill that whole group (never our own)."""
    try:
        group = os.getpgid(pid)
        if group != os.getpgrp():
            os.killpg(group, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
