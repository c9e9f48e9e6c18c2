"""Schema migrations of the review queue (alembic), shipped inside the ``review`` package.

``upgrade(url)`` brings a queue's database to the newest revision in ``versions/``; the queue
calls it whenever it opens a database, so a new brandbatch upgrades existing queues in place.
A database made before migrations existed (the review tables, no ``alembic_version``) is first
stamped with ``BASELINE``, the revision that describes exactly that schema. One migration runs
at a time however many processes open the queue at once: in one transaction that holds the
database's write lock (SQLite ``BEGIN IMMEDIATE``) or an advisory lock (PostgreSQL), and DDL
is transactional on both, so a failed migration leaves the schema as it was.

A schema change is a new file in ``versions/`` (``NNNN_what.py`` with ``revision = "NNNN"``,
``down_revision`` the previous one, and ``upgrade``/``downgrade`` written with ``alembic.op``;
``op.batch_alter_table`` for SQLite), plus the same change to the tables in ``review/queue.py``;
tests/review/test_migrations.py checks that the two agree and that old queues upgrade.

Opening a queue that is already at the newest revision (every command after the first) reads
its ``alembic_version`` row with one query and imports no alembic: the newest revision is the
highest ``NNNN`` among the file names in ``versions/`` (``newest_file_revision``; the tests check
that alembic's own head agrees).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

BASELINE = "0001"  # the schema of queues made before migrations (brandbatch commit 1ad0362)
_LOCK_KEY = 0x62726E64_72657669  # PostgreSQL advisory lock id of review-queue migrations


class SchemaError(RuntimeError):
    """The database's schema is not one this brandbatch can upgrade (the message says why)."""


_REVISION_FILE = re.compile(r"(\d{4})_\w+\.py")
VERSIONS = Path(__file__).parent / "versions"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "review:migrations")
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this brandbatch knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(connection: sa.Connection) -> str | None:
    """The database's revision; None if it has no ``alembic_version``."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _locked(url: str) -> Iterator[sa.Connection]:
    """A connection in a transaction that no other migration of this database runs beside."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60}, isolation_level="AUTOCOMMIT")
        # pysqlite would start its own transactions around DML only; take the write lock first.
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        engine = engine.execution_options(isolation_level="SERIALIZABLE")
    else:
        engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            yield conn
    finally:
        engine.dispose()


@cache
def newest_file_revision() -> str:
    """The highest revision among ``versions/NNNN_what.py`` (what ``head()`` reads with alembic)."""
    return max(m.group(1) for p in VERSIONS.iterdir() if (m := _REVISION_FILE.fullmatch(p.name)))


def _stored_revisions(engine: sa.Engine) -> list[str]:
    """The revisions in the database's ``alembic_version`` table ([] if it has none)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return []
        return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def upgrade(url: str, engine: sa.Engine | None = None) -> None:
    """Bring the review database at ``url`` to ``head()``. Raises ``SchemaError`` for a
    database at a revision this brandbatch does not know (made by a newer one). ``engine``: one
    open on ``url`` already (the queue's), to read the revision with."""
    reader = engine or sa.create_engine(url)
    try:
        if _stored_revisions(reader) == [newest_file_revision()]:
            return  # the usual case: nothing to lock or do, and alembic is not imported
    finally:
        if engine is None:
            reader.dispose()
    from alembic import command
    from alembic.script import ScriptDirectory

    target = head()
    with _locked(url) as conn:
        revision = current(conn)
        script = ScriptDirectory.from_config(alembic_config())
        if revision is not None and revision not in {s.revision for s in script.walk_revisions()}:
            raise SchemaError(f"the review database {_safe(url)} is at schema revision {revision!r}, which this "
                              f"brandbatch does not know (its newest is {target!r}): it was upgraded by a newer "
                              "brandbatch; upgrade this one")
        if revision is None and sa.inspect(conn).has_table("review_items"):
            command.stamp(alembic_config(conn), BASELINE)  # made before migrations existed
        command.upgrade(alembic_config(conn), "head")


def _safe(url: str) -> str:
    """The URL without its password."""
    return sa.make_url(url).render_as_string(hide_password=True)

