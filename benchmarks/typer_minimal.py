"""A minimal two-command Typer app: the reference for ``orion --help`` start-up time.

Run as ``python benchmarks/typer_minimal.py --help``; it is configured like orion's app
(shell completion, no pretty exceptions, ``-h``/``--help``) so that only the work orion does
on top of Typer shows in the comparison.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="minimal",
    help="A two-command Typer app.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


@app.command()
def bye(name: str = "world") -> None:
    """Say goodbye."""
    typer.echo(f"bye {name}")


if __name__ == "__main__":
    app()
