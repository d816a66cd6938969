"""Pytest fixture for a throw-away PostgreSQL server (the Debian ``postgresql`` package).

``postgres_url`` (session) runs ``initdb`` into a fresh temporary folder, starts the server on
a free port of 127.0.0.1 (its socket in that folder, nothing under /var/run), creates a
database and yields its SQLAlchemy URL, ``postgresql+psycopg2://dagster@127.0.0.1:<port>/
dagster`` (SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which dagster-postgres
does not install; the Helm values set the same scheme); the server is stopped and the folder
removed at the end. As root (CI, containers) the server runs as the ``postgres`` user the
package creates, since ``initdb`` refuses root. Import it into a conftest (``from
tests.postgres import postgres_url``) or a test module (``pytest_plugins =
("tests.postgres",)``).

Needs ``apt-get install -y postgresql`` (binaries in /usr/lib/postgresql/<major>/bin, or
``PG_BIN``); without it the tests that use the fixture are skipped, except under CI, where
they fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.object_store import free_port

USER, DATABASE = "dagster", "dagster"
SCHEME = "postgresql+psycopg2"  # the driver dagster-postgres depends on (psycopg2-binary)


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: $PG_BIN, else the newest Debian install."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _as_server_user(argv: list[str]) -> list[str]:
    """Run as the unprivileged ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], log: Path | None = None) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = log.read_text()[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stdout[-1000:]}{done.stderr[-2000:]}{tail}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql+psycopg2://dagster@127.0.0.1:<port>/dagster on a fresh cluster."""
    bin_dir = postgres_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        message = "PostgreSQL is not installed (apt-get install -y postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="elong-pg-"))  # under /tmp: reachable by postgres
    data, log = folder / "data", folder / "server.log"
    if os.geteuid() == 0:
        server = pwd.getpwnam("postgres")
        os.chown(folder, server.pw_uid, server.pw_gid)
    os.chmod(folder, 0o700)
    port = free_port()
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust",
              "-E", "UTF8", "--no-locale", "--no-sync"])
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
              "-o", f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off", "start"], log)
        try:
            _run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER,
                  DATABASE], log)
            yield f"{SCHEME}://{USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], log)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
