"""Data volumes: the registry of read-only archive areas and the mount plan labs are started with."""
