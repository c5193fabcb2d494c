"""Persistence: SQLModel tables, sessions, Alembic migrations.

This package's top level stays free of SQLAlchemy so that ``orion ls`` can check the schema
version without importing it.
"""

#: the newest migration in db/migrations/versions (a test checks they agree)
SCHEMA_HEAD = "0004"
