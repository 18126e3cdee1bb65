"""pipeline_versions.files: the data files a pipeline version's document names

A CWL document may name files besides other documents: File and Directory defaults and literals
(`default: {class: File, location: data.txt}`), ontologies for format checks (`$schemas`). Packing inlines
documents but not those; they are kept with the version (path below the document's folder -> content,
base64) and written next to the packed document where engines read it (`pipelines.documents.materialise`).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.add_column(sa.Column("files", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_versions") as batch:
        batch.drop_column("files")
