"""OpenID Connect identities (issue 19): a user's link to a provider's subject

Revision ID: 0019
Revises: 0018

Numbered ahead of its schema so the parallel work of issue 19 chains in a fixed order; until its tables
land it changes nothing.
"""

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
