"""the audit log (issue 19): append-only, hash-chained records of security-relevant actions

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

from datalabs.db.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=True),
        sa.Column("what", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=True),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_records_at", "audit_records", ["at"])
    op.create_index("ix_audit_records_who", "audit_records", ["who"])
    op.create_index("ix_audit_records_what", "audit_records", ["what"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("anchor", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # the head row exists before any append: two replicas' first appends cannot both insert it
    op.bulk_insert(head, [{"id": 1, "last_hash": "0" * 64, "anchor": "0" * 64}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_records_what", table_name="audit_records")
    op.drop_index("ix_audit_records_who", table_name="audit_records")
    op.drop_index("ix_audit_records_at", table_name="audit_records")
    op.drop_table("audit_records")
