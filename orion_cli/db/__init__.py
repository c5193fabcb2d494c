"""Persistence: SQLModel tables, sessions, Alembic migrations.

This package's top level stays free of SQLAlchemy so that ``orion ls`` can check the schema
version without importing it.
"""

#: the newest migration in db/migrations/versions (a test checks they agree)
SCHEMA_HEAD = "0016"
#: every revision in db/migrations/versions, oldest first (a test checks they agree); a
#: database stamped with any other revision belongs to another application or a newer orion
KNOWN_REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
    "0015",
    "0016",
)
#: tables that every orion schema since 0001 has
CORE_TABLES = frozenset({"job", "job_event", "job_result"})
#: every table orion creates (a database that has one of these but no orion stamp clashes)
ORION_TABLES = frozenset(
    {"job", "job_event", "job_result", "job_attempt", "orion_meta", "job_dependencies", "job_tag"}
)
