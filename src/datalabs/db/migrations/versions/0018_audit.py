"""the audit log (issue 19): append-only, hash-chained records of security-relevant actions

Revision ID: 0018
Revises: 0017

Numbered ahead of its schema so the parallel work of issue 19 chains in a fixed order; until its tables
land it changes nothing.
"""

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
