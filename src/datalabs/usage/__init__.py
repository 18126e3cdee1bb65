"""Usage and quotas (DESIGN §1 usage): what labs and runs used, per user, group and cluster; the limits."""
