"""Studies of many jobs: eos, converge, workflow files and their status."""
