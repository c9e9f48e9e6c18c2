"""Review tests: a queue on a temp SQLite file, or (where a test module asks for both
backends) on a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.review.review_factories import make_jobs, results_for

from review.queue import ReviewQueue

def _postgres_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return debian[-1].parent if debian else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for this test session on a free loopback port (its base URL).
    Skips, saying why, where PostgreSQL or psycopg is missing (``make postgres`` installs it)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server (pg_ctl, initdb) not found: `make postgres` installs Debian's postgresql")
    root = Path(tempfile.mkdtemp(prefix="brandbatch-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the Debian package's user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"

    def pg(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "brandbatch", "--auth=trust", "-E", "UTF8",
           "--locale=C", "--no-sync")
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
           f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield f"postgresql+psycopg://brandbatch@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    import psycopg

    name = f"review_{uuid.uuid4().hex[:12]}"
    admin = postgres_server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{postgres_server}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def review_db() -> str:
    """The queue's backend; a module overrides this with ``params=BACKENDS`` (review_factories)
    to run on both."""
    return "sqlite"


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, review_db: str, request: pytest.FixtureRequest) -> Path:
    monkeypatch.delenv("BRANDBATCH_REVIEW_DB", raising=False)
    if review_db == "postgresql":
        monkeypatch.setenv("BRANDBATCH_REVIEW_DB", request.getfixturevalue("postgres_url"))
    return tmp_path / "out"


@pytest.fixture
def queue(out: Path) -> Iterator[ReviewQueue]:
    q = ReviewQueue.for_out(out)
    yield q
    q.close()


@pytest.fixture
def enqueue(queue: ReviewQueue) -> Callable:
    def add(asset_id: str, verdict: str = "review", variant: int = 0, **kw):
        jobs = make_jobs(asset_id, variant, **kw)
        return queue.enqueue(jobs, results_for(jobs, verdict))
    return add
