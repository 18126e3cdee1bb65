"""Lab instances: launching a datalab for a user, its life cycle, limits, and the records of it."""
