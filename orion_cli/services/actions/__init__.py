"""The user's actions on existing jobs: cancel, retry, hold, release, priority, rm."""
