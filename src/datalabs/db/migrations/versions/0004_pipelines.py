"""pipelines: registry, versions, runs queue, schedules and their fires

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import datalabs.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("system", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("allowed_users", sa.JSON(), nullable=False),
        sa.Column("allowed_groups", sa.JSON(), nullable=False),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.Column("created_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "pipeline_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output_space", sa.String(length=100), nullable=False),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_due", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pipeline_schedules_next_due"), "pipeline_schedules", ["next_due"], unique=False)
    op.create_index(
        op.f("ix_pipeline_schedules_pipeline_id"), "pipeline_schedules", ["pipeline_id"], unique=False
    )
    op.create_table(
        "pipeline_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("packed", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipelines.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pipeline_id", "version"),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=True),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("output_space", sa.String(length=100), nullable=False),
        sa.Column("output_path", sa.Text(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=True),
        sa.Column("notify", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("lease_until", datalabs.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("not_before", datalabs.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["pipeline_id"], ["pipelines.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["schedule_id"], ["pipeline_schedules.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["version_id"], ["pipeline_versions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_pipeline_runs_owner_id"), "pipeline_runs", ["owner_id"], unique=False)
    op.create_index(op.f("ix_pipeline_runs_pipeline_id"), "pipeline_runs", ["pipeline_id"], unique=False)
    op.create_index("ix_pipeline_runs_state_created", "pipeline_runs", ["state", "created_at"], unique=False)
    op.create_table(
        "pipeline_schedule_fires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("due_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("fired_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["schedule_id"], ["pipeline_schedules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule_id", "due_at"),
    )


def downgrade() -> None:
    op.drop_table("pipeline_schedule_fires")
    op.drop_index("ix_pipeline_runs_state_created", table_name="pipeline_runs")
    op.drop_index(op.f("ix_pipeline_runs_pipeline_id"), table_name="pipeline_runs")
    op.drop_index(op.f("ix_pipeline_runs_owner_id"), table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipeline_versions")
    op.drop_index(op.f("ix_pipeline_schedules_pipeline_id"), table_name="pipeline_schedules")
    op.drop_index(op.f("ix_pipeline_schedules_next_due"), table_name="pipeline_schedules")
    op.drop_table("pipeline_schedules")
    op.drop_table("pipelines")
