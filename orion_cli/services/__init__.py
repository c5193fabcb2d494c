"""Use cases: submit, poll (reconcile), cancel, query, doctor. The CLI calls only these."""
