"""Runtime backends: how labs are started, watched and stopped (local sandboxes, Slurm, Kubernetes)."""
