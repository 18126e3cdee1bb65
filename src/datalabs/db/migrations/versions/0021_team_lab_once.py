"""one active team lab per team and datalab (e.g. the team's tracking server), and one serving lab per team
and model version (issue 18), enforced by the database: two members launching at once get the same lab

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_ACTIVE_STATES = "state IN ('pending', 'starting', 'running')"
_TEAM_LAB = f"team IS NOT NULL AND model IS NULL AND {_ACTIVE_STATES}"
_MODEL_LAB = f"team IS NOT NULL AND model IS NOT NULL AND {_ACTIVE_STATES}"


def upgrade() -> None:
    op.create_index(
        "ux_labs_team_datalab_active",
        "labs",
        ["team", "datalab"],
        unique=True,
        sqlite_where=sa.text(_TEAM_LAB),
        postgresql_where=sa.text(_TEAM_LAB),
    )
    op.create_index(
        "ux_labs_team_model_active",
        "labs",
        ["team", "datalab", "model"],
        unique=True,
        sqlite_where=sa.text(_MODEL_LAB),
        postgresql_where=sa.text(_MODEL_LAB),
    )


def downgrade() -> None:
    op.drop_index("ux_labs_team_model_active", table_name="labs")
    op.drop_index("ux_labs_team_datalab_active", table_name="labs")
