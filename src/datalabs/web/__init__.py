"""Server-rendered web UI (Jinja2 + vendored htmx); pages call the same services as the API."""
