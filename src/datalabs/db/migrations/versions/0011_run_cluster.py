"""run cluster: the configured cluster (`[[clusters]]`) a pipeline run's jobs go to, and a schedule's runs

Runs recorded before this revision ran on the platform's host, the one local cluster (`local` by default).
Schedules made before it keep firing on their owner's first cluster (an empty `cluster`).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("cluster", sa.String(length=64), nullable=False, server_default="local"))
    with op.batch_alter_table("pipeline_schedules") as batch:
        batch.add_column(sa.Column("cluster", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_schedules") as batch:
        batch.drop_column("cluster")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("cluster")
