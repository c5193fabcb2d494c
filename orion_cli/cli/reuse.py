"""``orion reuse invalidate``: results that ``--reuse`` must not hand out again."""

from __future__ import annotations

from typing import Annotated

import typer

from orion_cli.cli.output import handle_errors, message, print_json
from orion_cli.cli.root import app

reuse_app = typer.Typer(
    help="Results --reuse may hand out: mark some not to be reused.", no_args_is_help=True
)
app.add_typer(reuse_app, name="reuse")


@reuse_app.command("invalidate")
@handle_errors
def invalidate(
    ids: Annotated[list[int] | None, typer.Argument(help="Job ids.")] = None,
    engine: Annotated[str, typer.Option("--engine", "-e", help="Every job of this engine.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mark jobs' results not to be reused (an event records who and when)."""
    from orion_cli.config import load_settings
    from orion_cli.db.session import session_scope
    from orion_cli.services.lifecycle.reuse import invalidate as mark

    settings = load_settings()
    with session_scope(settings.resolved_database_url) as session:
        done = mark(session, ids or [], engine)
    if as_json:
        print_json({"invalidated": done})
        return
    message(
        f"{len(done)} result(s) will not be reused"
        + (f" ({', '.join(map(str, done))})" if done else "")
    )
