"""pipeline triggers: runs started by new data, a signed webhook or another run finishing

`pipeline_triggers` holds the rules, `trigger_events` each event once (unique per trigger and event key:
the exactly-once guarantee), and `pipeline_runs.triggered_by` says which trigger and event started a run.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

from datalabs.db.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_triggers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "pipeline_id", sa.Integer(), sa.ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output_space", sa.String(length=100), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("armed_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pipeline_triggers_pipeline_id", "pipeline_triggers", ["pipeline_id"])
    op.create_table(
        "trigger_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "trigger_id",
            sa.Integer(),
            sa.ForeignKey("pipeline_triggers.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_key", sa.String(length=255), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("skipped", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("trigger_id", "event_key"),
    )
    op.create_index("ix_trigger_events_run_id", "trigger_events", ["run_id"])
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("triggered_by", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("triggered_by")
    op.drop_table("trigger_events")
    op.drop_table("pipeline_triggers")
