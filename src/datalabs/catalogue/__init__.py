"""Datalab definitions: `datalab-meta.yml` schema, loading from directories, versions, search."""
