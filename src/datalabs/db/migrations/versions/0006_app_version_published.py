"""apps: publication per version (app_versions.published)

Until 0005 an approval published the whole app, and the catalogue mirrored every built version as
public, so builds made after the approval went public without review. From here on only the version
a moderator approved is published. Existing data is carried over on the safe side: of a published
app, only its reviewed version (`submitted_version`) stays published; the catalogue's copies of
app versions (`_app` in datalab_versions.meta) are rewritten to match, so no unreviewed version
stays public until its next sync.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

apps = sa.table(
    "apps",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("state", sa.String),
    sa.column("submitted_version", sa.String),
)
versions = sa.table(
    "app_versions",
    sa.column("id", sa.Integer),
    sa.column("app_id", sa.Integer),
    sa.column("version", sa.String),
    sa.column("published", sa.Boolean),
)
datalabs = sa.table(
    "datalabs", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("source", sa.String)
)
datalab_versions = sa.table(
    "datalab_versions",
    sa.column("id", sa.Integer),
    sa.column("datalab_id", sa.Integer),
    sa.column("version", sa.String),
    sa.column("meta", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("app_versions") as batch:
        batch.add_column(sa.Column("published", sa.Boolean(), nullable=False, server_default=sa.false()))
    conn = op.get_bind()
    reviewed = conn.execute(
        sa.select(apps.c.id, apps.c.submitted_version).where(apps.c.state == "published")
    ).all()
    for app_id, version in reviewed:
        conn.execute(
            versions.update()
            .where(versions.c.app_id == app_id, versions.c.version == version)
            .values(published=True)
        )
    _rewrite_catalogue_access(conn)


def _rewrite_catalogue_access(conn) -> None:
    """Per-version `_app.public`/`review` in the catalogue's copies of app versions."""
    published = {
        (name, version)
        for name, version in conn.execute(
            sa.select(apps.c.name, versions.c.version)
            .join(versions, versions.c.app_id == apps.c.id)
            .where(versions.c.published == sa.true())
        )
    }
    under_review = {
        (name, version)
        for name, version in conn.execute(
            sa.select(apps.c.name, apps.c.submitted_version).where(apps.c.state == "submitted")
        )
    }
    rows = conn.execute(
        sa.select(datalab_versions.c.id, datalabs.c.name, datalab_versions.c.version, datalab_versions.c.meta)
        .join(datalabs, datalabs.c.id == datalab_versions.c.datalab_id)
        .where(datalabs.c.source == "db")
    ).all()
    for row_id, name, version, meta in rows:
        if not isinstance(meta, dict) or not isinstance(meta.get("_app"), dict):
            continue
        access = {
            **meta["_app"],
            "public": (name, version) in published,
            "review": (name, version) in under_review,
        }
        conn.execute(
            datalab_versions.update()
            .where(datalab_versions.c.id == row_id)
            .values(meta={**meta, "_app": access})
        )
    # Every API replica rebuilds its catalogue snapshot when this counter moves.
    conn.execute(sa.text("UPDATE counters SET value = value + 1 WHERE name = 'catalogue'"))


def downgrade() -> None:
    with op.batch_alter_table("app_versions") as batch:
        batch.drop_column("published")
