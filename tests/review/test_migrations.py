"""Review queue schema migrations (review/migrations, alembic): queues made before migrations
existed upgrade in place with every item and decision kept, new queues start at the newest
revision, the migrations build exactly the tables review/queue.py uses, and a database from a
newer brandbatch is refused rather than used."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from tests.review.review_factories import BACKENDS, CAMPAIGN, make_jobs, results_for

from review.migrations import BASELINE, alembic_config, current, head, newest_file_revision, upgrade
from review.queue import ReviewError, ReviewQueue, metadata

DATA = Path(__file__).with_name("data")
# What brandbatch 1ad0362 put in tests/review/data/queue-1ad0362.*: asset -> (state, decisions).
LEGACY = {"tent-01": ("queued", []), "boots-02": ("approved", ["approve"]), "pack-03": ("approved", ["approve"]),
          "bottle-04": ("reroll_requested", ["reroll"]), "jacket-05": ("rejected", ["reject"])}


@pytest.fixture(params=BACKENDS)
def review_db(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(review_db: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of the backend."""
    if review_db == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'review.sqlite3'}"


@pytest.fixture
def legacy_url(review_db: str, url: str, tmp_path: Path) -> str:
    """A queue made by brandbatch 1ad0362 (before migrations): its SQLite file, or its pg_dump."""
    if review_db == "sqlite":
        shutil.copy(DATA / "queue-1ad0362.sqlite3", tmp_path / "review.sqlite3")
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            conn.execute((DATA / "queue-1ad0362.postgresql.sql").read_text(encoding="utf-8"))
    return url


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return current(conn)
    finally:
        engine.dispose()


def _schema_differences(url: str) -> list:
    """What alembic's autogenerate would change to make the database match review/queue.py."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()


def test_a_queue_made_before_migrations_is_upgraded_in_place(legacy_url: str):
    assert _revision(legacy_url) is None
    queue = ReviewQueue(legacy_url)
    try:
        assert _revision(legacy_url) == head()
        assert _schema_differences(legacy_url) == []
        items = {item.asset_id: item for item in queue.items(CAMPAIGN)}
        assert {a: i.state for a, i in items.items()} == {a: state for a, (state, _) in LEGACY.items()}
        for asset, (_, decisions) in LEGACY.items():
            assert [d.decision for d in queue.decisions(items[asset].id)] == decisions
        assert items["pack-03"].approved_by == "dana" and items["pack-03"].approval_id.startswith("rev-")
        secret = queue.secret()
        assert len(secret) == 64
        # The upgraded queue works as before: decide, reroll results come back, new items go in.
        queue.decide(items["tent-01"].id, "sam", "approve", expected_version=items["tent-01"].version)
        (rerolled,) = [j for j in queue.pending_rerolls(CAMPAIGN) if j.aspect == "1:1"]
        jobs = [j for j in queue.pending_rerolls(CAMPAIGN)]
        assert rerolled.reroll == 1 and queue.enqueue(jobs, results_for(jobs)).state == "queued"
        new = make_jobs("stove-06", 1)
        assert queue.enqueue(new, results_for(new)).state == "queued"
    finally:
        queue.close()
    reopened = ReviewQueue(legacy_url)
    try:
        assert reopened.secret() == secret and len(reopened.items(CAMPAIGN)) == 6
    finally:
        reopened.close()


def test_a_new_queue_starts_at_the_newest_revision_with_the_queues_tables(url: str):
    ReviewQueue(url).close()
    assert _revision(url) == head()
    assert _schema_differences(url) == []


def test_every_revision_downgrades_and_upgrades_again(url: str):
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(url)
    assert _revision(url) == head() and _schema_differences(url) == []


def test_the_newest_revision_file_is_alembics_head():
    """Opening a queue compares the database with the newest file's revision (no alembic import)."""
    assert newest_file_revision() == head()


def test_a_queue_at_the_newest_revision_opens_without_alembic_and_an_older_one_upgrades(url: str):
    ReviewQueue(url).close()
    opened = subprocess.run([sys.executable, "-c", "import sys; from review.queue import ReviewQueue; "
                             f"ReviewQueue({url!r}).close(); print(sorted(m for m in sys.modules if "
                             "m.split('.')[0] == 'alembic'))"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    assert opened.stdout.strip() == "[]", opened.stderr
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "-1")  # a queue of the brandbatch before the newest migration
    finally:
        engine.dispose()
    assert _revision(url) != head()
    ReviewQueue(url).close()
    assert _revision(url) == head() and _schema_differences(url) == []


def test_a_database_from_a_newer_brandbatch_is_refused(url: str):
    upgrade(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    with pytest.raises(ReviewError, match="revision '9999', which this brandbatch does not know"):
        ReviewQueue(url)
    assert _revision(url) == "9999"  # left as it was


def test_queues_opened_at_once_migrate_once(url: str, review_db: str):
    """The review server and a run's workers may open a new (or old) queue at the same moment."""
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_queue() -> None:
        start.wait()
        try:
            ReviewQueue(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_queue) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and _revision(url) == head()


def test_the_baseline_revision_builds_the_schema_of_queues_made_before_migrations(legacy_url: str, review_db: str,
                                                                                 tmp_path: Path,
                                                                                 request: pytest.FixtureRequest):
    """Stamping a queue made before migrations with BASELINE is right only if BASELINE builds
    exactly its schema: compared column by column, index by index, key by key."""
    if review_db == "sqlite":
        baseline_url = f"sqlite:///{tmp_path / 'baseline.sqlite3'}"
    else:
        baseline_url = _another_database(request.getfixturevalue("postgres_server"))
    baseline = sa.create_engine(baseline_url)
    legacy = sa.create_engine(legacy_url)
    try:
        with baseline.begin() as conn:
            command.upgrade(alembic_config(conn), BASELINE)
        made_before = sa.MetaData()
        made_before.reflect(legacy)
        with baseline.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), made_before) == []
    finally:
        baseline.dispose()
        legacy.dispose()


def _another_database(server: str) -> str:
    import uuid

    import psycopg

    name = f"baseline_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"
