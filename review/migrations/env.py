"""Alembic environment of the review queue: runs on the connection ``review.migrations``
passes in (``config.attributes["connection"]``), inside that connection's transaction."""

from __future__ import annotations

from alembic import context

from review.queue import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  render_as_batch=True)  # SQLite alters tables by copying them: batch mode
with context.begin_transaction():
    context.run_migrations()
