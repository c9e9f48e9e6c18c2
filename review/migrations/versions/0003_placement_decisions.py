"""Decisions per placement and copy edits: an item keeps the placements a designer rejected and
the headline/CTA/alt text a designer edited (both JSON on the item row, so the decision log's
copy of the row carries them); an audit row names the placement and the copy change it made.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("rejected_placements", sa.Text, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("copy_overrides", sa.Text, nullable=False, server_default="{}"))
    with op.batch_alter_table("review_decisions") as batch:
        batch.add_column(sa.Column("placement", sa.String(100)))
        batch.add_column(sa.Column("copy_change", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("review_decisions") as batch:
        batch.drop_column("copy_change")
        batch.drop_column("placement")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("copy_overrides")
        batch.drop_column("rejected_placements")
