"""labs.team: a team-scoped lab (e.g. a team's MLflow tracking server) serves every member of that team;
labs.tracking_team: the team whose tracking server an ordinary lab logs to; labs.model: the registered
model version a serving lab serves

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("labs") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("tracking_team", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("model", sa.String(length=200), nullable=True))
        batch.create_index("ix_labs_team", ["team"])


def downgrade() -> None:
    with op.batch_alter_table("labs") as batch:
        batch.drop_index("ix_labs_team")
        batch.drop_column("model")
        batch.drop_column("tracking_team")
        batch.drop_column("team")
