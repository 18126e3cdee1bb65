"""run_notifications: what was notified for a run, and how it went; notices' unread index

Each e-mail and webhook call a run's notification makes is recorded as `sending` in the transaction that
marks the run notified (`pipeline_runs.notified`, still the one "at most once" switch), then set to
`delivered` or `failed` with the reason, so the run page can say what was sent where. Runs notified
before this revision have no records: what they sent was only logged.

`ix_notices_user_unread` (user_id, read_at) serves the unread count every page's header shows.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import datalabs.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", datalabs.db.types.UTCDateTime(), nullable=False),
        sa.Column("ended_at", datalabs.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["pipeline_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_notifications_run_id", "run_notifications", ["run_id"])
    op.create_index("ix_notices_user_unread", "notices", ["user_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_notices_user_unread", table_name="notices")
    op.drop_index("ix_run_notifications_run_id", table_name="run_notifications")
    op.drop_table("run_notifications")
