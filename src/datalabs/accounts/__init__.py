"""Users, groups (teams), roles, passwords, login sessions, API tokens and permission checks."""
