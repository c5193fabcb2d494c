"""Health check and group database administration."""
