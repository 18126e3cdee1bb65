"""lab shares (issue 19): a running lab opened to named users or a team, view or collaborate

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

from datalabs.db.types import UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_shares",
        sa.Column(
            "lab_id", sa.String(length=32), sa.ForeignKey("labs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("grantee", sa.String(length=70), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lab_id", "grantee"),
        sa.CheckConstraint("mode IN ('view', 'collaborate')", name="ck_lab_shares_mode"),
    )
    op.create_index("ix_lab_shares_grantee", "lab_shares", ["grantee"])


def downgrade() -> None:
    op.drop_index("ix_lab_shares_grantee", table_name="lab_shares")
    op.drop_table("lab_shares")
