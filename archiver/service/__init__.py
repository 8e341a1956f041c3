"""The long-running service: scheduler, single-instance lock, signals."""
