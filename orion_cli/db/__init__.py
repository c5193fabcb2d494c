"""Persistence: SQLModel tables, sessions, Alembic migrations."""
