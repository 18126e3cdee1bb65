"""HTTP API v1: one router per resource; thin (parse, authorise, call a service, render)."""
