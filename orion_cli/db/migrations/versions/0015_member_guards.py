"""a group member's own rows: server-set ids and event times, known statuses, own parents

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 02:00:00

PostgreSQL only (a SQLite file has one user). Row-level security let a member write any
value in their own rows; the hostile-input probe of 2026-12-06 used that to squat ids
(every other member's insert then failed, B5), to date an event 'infinity' or 9999 with a
made-up status (everyone's audit crashed or was headed by it, B6), and to add a dependency
edge from their own job to another member's parent (that member's retry then re-pointed a
foreign child, B3). For roles bound by row-level security (not the tables' owner, not a
superuser):

- ``id`` of every orion table is taken from its sequence, whatever the insert said (an id
  the session's own default just drew is kept, so nothing is drawn twice);
- ``job_event.at`` is the server's clock; ``to_status``/``from_status`` must be a job
  status and ``source`` one of orion's; ``job.status`` must be a job status;
- a dependency edge needs the member's own child *and* own parent.

The owner and superusers (the admin, the test suite's fixtures) are not bound, like the
policies. A trigger, not a CHECK constraint: it leaves the owner free and stays right when
later migrations add columns (column grants would not).
"""

from __future__ import annotations

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

STATUSES = ("created", "queued", "running", "completed", "failed", "cancelled")
SOURCES = ("submit", "poll", "user", "retry", "recovery", "adopt", "reuse")
ID_TABLES = ("job", "job_event", "job_attempt", "job_result", "job_dependencies", "job_tag")
OWN = "EXISTS (SELECT 1 FROM job WHERE job.id = {col} AND job.owner = current_user)"


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


BOUND = """
CREATE OR REPLACE FUNCTION orion_bound() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT NOT (r.rolsuper OR r.rolbypassrls) AND pg_get_userbyid(c.relowner) <> current_user
  FROM pg_roles r, pg_class c
  WHERE r.rolname = current_user AND c.relname = 'job' AND c.relnamespace = 'public'::regnamespace
$$"""

SERVER_ID = """
CREATE OR REPLACE FUNCTION orion_server_id() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE seq text := pg_get_serial_sequence(
  quote_ident(TG_TABLE_SCHEMA) || '.' || quote_ident(TG_TABLE_NAME), 'id');
BEGIN
  IF NOT orion_bound() THEN RETURN NEW; END IF;
  BEGIN
    IF NEW.id = currval(seq) THEN RETURN NEW; END IF;  -- the default just drew it
  EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;
  END;
  NEW.id := nextval(seq);
  RETURN NEW;
END $$"""

EVENT_CHECK = f"""
CREATE OR REPLACE FUNCTION orion_event_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT orion_bound() THEN RETURN NEW; END IF;
  IF NEW.to_status NOT IN ({_sql_list(STATUSES)})
     OR (NEW.from_status IS NOT NULL AND NEW.from_status NOT IN ({_sql_list(STATUSES)}))
     OR NEW.source NOT IN ({_sql_list(SOURCES)}) THEN
    RAISE EXCEPTION 'orion: job_event with an unknown status or source'
      USING ERRCODE = 'check_violation';
  END IF;
  NEW.at := clock_timestamp();  -- the server's clock, not the member's
  RETURN NEW;
END $$"""

JOB_CHECK = f"""
CREATE OR REPLACE FUNCTION orion_job_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF orion_bound() AND NEW.status NOT IN ({_sql_list(STATUSES)}) THEN
    RAISE EXCEPTION 'orion: job status % is not one of orion''s', NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$"""

EDGE_POLICY = (
    f"WITH CHECK ({OWN.format(col='child_id')} AND {OWN.format(col='parent_id')})"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (BOUND, SERVER_ID, EVENT_CHECK, JOB_CHECK):
        op.execute(statement)
    for table in ID_TABLES:
        op.execute(
            f"CREATE TRIGGER orion_server_id BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION orion_server_id()"
        )
    op.execute(
        "CREATE TRIGGER orion_event_check BEFORE INSERT ON job_event "
        "FOR EACH ROW EXECUTE FUNCTION orion_event_check()"
    )
    op.execute(
        "CREATE TRIGGER orion_job_check BEFORE INSERT OR UPDATE OF status ON job "
        "FOR EACH ROW EXECUTE FUNCTION orion_job_check()"
    )
    op.execute("DROP POLICY orion_insert_own ON job_dependencies")
    op.execute(f"CREATE POLICY orion_insert_own ON job_dependencies FOR INSERT {EDGE_POLICY}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP POLICY orion_insert_own ON job_dependencies")
    op.execute(
        "CREATE POLICY orion_insert_own ON job_dependencies FOR INSERT "
        f"WITH CHECK ({OWN.format(col='child_id')})"
    )
    op.execute("DROP TRIGGER orion_job_check ON job")
    op.execute("DROP TRIGGER orion_event_check ON job_event")
    for table in ID_TABLES:
        op.execute(f"DROP TRIGGER orion_server_id ON {table}")
    for function in ("orion_job_check", "orion_event_check", "orion_server_id", "orion_bound"):
        op.execute(f"DROP FUNCTION {function}()")
