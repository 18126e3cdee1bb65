"""lab shares (issue 19): a running lab opened to named users or a team, view or collaborate

Revision ID: 0020
Revises: 0019

Numbered ahead of its schema so the parallel work of issue 19 chains in a fixed order; until its tables
land it changes nothing.
"""

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
