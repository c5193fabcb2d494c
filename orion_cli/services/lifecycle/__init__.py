"""The bottom of the services: the one writer of job state, poll (reconcile), retries,
recovery, dependencies."""
