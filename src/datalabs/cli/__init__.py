"""The `datalabs` command: `serve` (the default), `admin` bootstrap commands, and client commands."""
