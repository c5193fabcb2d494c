"""Read-only views of jobs: show, ls, results, stats, metrics, logs, wait, watch."""
