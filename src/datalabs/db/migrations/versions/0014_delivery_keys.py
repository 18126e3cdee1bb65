"""delivery keys: run notifications are sent effectively once

Each delivery (`run_notifications`) gets its idempotency key (carried as the e-mail's Message-ID and the
webhook's X-Datalabs-Delivery header and body field), the worker sending it and until when (`sender`,
`lease_until`: after that another worker sends it again, with the same key) and the sends started
(`attempts`). Records made before this revision have no key: one left `sending` stays "outcome
unknown" and is never sent again.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

from datalabs.db.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_notifications") as batch:
        batch.add_column(sa.Column("key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("sender", sa.String(length=128), nullable=False, server_default=""))
        batch.add_column(sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_run_notifications_key", "run_notifications", ["key"], unique=True)
    op.create_index("ix_run_notifications_state_lease", "run_notifications", ["state", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_run_notifications_state_lease", table_name="run_notifications")
    op.drop_index("ix_run_notifications_key", table_name="run_notifications")
    with op.batch_alter_table("run_notifications") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lease_until")
        batch.drop_column("sender")
        batch.drop_column("key")
