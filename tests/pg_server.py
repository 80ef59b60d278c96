"""A PostgreSQL database for the journal's tests, wherever the suite runs.

- A server answers on 127.0.0.1:5432 (this project's machines and CI, trust auth as `postgres`): the run creates
  its own database under a random name and drops it at the end.
- No server, but PostgreSQL's binaries (`initdb`, `pg_ctl`, on PATH or under /usr/lib/postgresql/*/bin): a
  throwaway cluster in a temporary directory, on a free loopback port, removed at the end (initdb refuses root,
  so as root it runs as the `postgres` user through `runuser`).
- Neither: the PostgreSQL tests skip with one line saying what to install — except under CI=true, where a
  missing database is a broken build and they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg

INSTALL_HINT = (
    "PostgreSQL journal tests skipped: no server on 127.0.0.1:5432 and no initdb/pg_ctl; install PostgreSQL "
    "(Debian/Ubuntu: apt-get install postgresql) or start one there with trust auth for `postgres`"
)


class Unavailable(Exception):
    """No PostgreSQL can be had here: skip (fail under CI=true) with this message."""


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _binaries() -> tuple[str, str] | None:
    for directory in [None, *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        initdb = shutil.which("initdb", path=directory)
        pg_ctl = shutil.which("pg_ctl", path=directory)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str]:
    """A cluster of our own in a temporary directory; yields its admin URL."""
    found = _binaries()
    if found is None:
        raise Unavailable(INSTALL_HINT)
    initdb, pg_ctl = found
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="marginguard-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            raise Unavailable(
                "PostgreSQL tests skipped: run as root with no `postgres` user for initdb"
            ) from None
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        # -w: returns once the server accepts connections (no polling here).
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        raise Unavailable(f"PostgreSQL tests: a throwaway cluster failed to start: {exc.stderr!r}") from exc
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def test_database() -> Iterator[str]:
    """The URL of a database of this run's own, dropped afterwards; raises `Unavailable`."""
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    with contextlib.ExitStack() as stack:
        admin = local if asyncio.run(_answers(local)) else stack.enter_context(_throwaway_cluster())
        name = f"marginguard_test_{secrets.token_hex(6)}"
        asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
        try:
            yield admin.rsplit("/", 1)[0] + "/" + name
        finally:
            asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_schema(url: str, schema: str) -> str:
    """A fresh schema in the run's database; the URL that makes it the journal's (asyncpg passes unknown
    query parameters on as server settings)."""
    asyncio.run(_admin(url, f'CREATE SCHEMA "{schema}"'))
    return f"{url}?search_path={schema}"
