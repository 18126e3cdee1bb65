"""usage records: each ended lab session's resources, cluster and times (sacct's for Slurm labs)

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from datalabs.db.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("lab_id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("datalab", sa.String(length=64), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory", sa.BigInteger(), nullable=False),
        sa.Column("gpu", sa.Integer(), nullable=False),
        sa.Column("opened_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("accounted", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("lab_id", "opened_at", name="uq_usage_records_lab_session"),
    )
    op.create_index("ix_usage_records_lab_id", "usage_records", ["lab_id"])
    op.create_index("ix_usage_records_owner_ended", "usage_records", ["owner_id", "ended_at"])


def downgrade() -> None:
    op.drop_table("usage_records")
