"""lab cluster: the configured cluster (`[[clusters]]`) a lab was placed on

`labs.backend` (the cluster's backend, `local` or `slurm`) was always `local`; labs recorded before this
revision ran on the one local cluster, named `local` by default.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("labs") as batch:
        batch.add_column(sa.Column("cluster", sa.String(length=64), nullable=False, server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("labs") as batch:
        batch.drop_column("cluster")
