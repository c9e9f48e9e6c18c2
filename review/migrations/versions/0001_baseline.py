"""Baseline: the review queue's schema before migrations (brandbatch commit 1ad0362).

Queues made before migrations existed have exactly these tables and no ``alembic_version``;
``review.migrations.upgrade`` stamps them with this revision and upgrades from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("asset_id", sa.String(100), nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("style", sa.String(100), nullable=False),
        sa.Column("style_version", sa.Integer, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("reroll", sa.Integer, nullable=False),
        sa.Column("planned", sa.String(64), nullable=False),
        sa.Column("jobs", sa.Text, nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("qa", sa.Text, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("approval_id", sa.String(40)),
        sa.Column("approved_by", sa.String(100)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_items_campaign", "review_items", ["campaign"])
    op.create_index("ix_review_items_state", "review_items", ["state"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("item_version", sa.Integer, nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(40)),
        sa.Column("note", sa.Text),
        sa.Column("approval_id", sa.String(40)),
        sa.Column("job_keys", sa.Text, nullable=False),
    )
    op.create_index("ix_review_decisions_item_id", "review_decisions", ["item_id"])
    op.create_table(
        "review_settings",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("review_settings")
    op.drop_table("review_decisions")
    op.drop_table("review_items")
