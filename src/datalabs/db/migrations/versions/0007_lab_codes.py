"""lab_codes: one-time codes that open a lab on its own origin

Labs are served on origins of their own (issue 13, finding 5); a browser gets into one with a lab
cookie, which the lab's origin sets in exchange for a one-time code the platform issued to the
logged-in session. The table holds the codes' hashes, bound to user, session and lab.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import datalabs.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lab_codes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("lab_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", datalabs.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["auth_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lab_codes_session_id", "lab_codes", ["session_id"])
    op.create_index("ix_lab_codes_expires_at", "lab_codes", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_lab_codes_expires_at", table_name="lab_codes")
    op.drop_index("ix_lab_codes_session_id", table_name="lab_codes")
    op.drop_table("lab_codes")
