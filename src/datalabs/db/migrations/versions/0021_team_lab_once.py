"""one running tracking server per team and datalab (issue 18), enforced by the database

Revision ID: 0021
Revises: 0020

Numbered ahead of its schema so the parallel work of issue 19 chains in a fixed order; until its tables
land it changes nothing.
"""

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
