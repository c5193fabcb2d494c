"""orion: submit, track and parse materials-science calculations on SLURM clusters."""

__version__ = "0.1.0"
