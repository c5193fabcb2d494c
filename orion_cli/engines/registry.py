"""Find engines by entry point (group ``orion.engines``), so labs can add their own packages."""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from orion_cli.engines.base import Engine

GROUP = "orion.engines"


@cache
def _registered() -> dict[str, EntryPoint]:
    """The installed engines' entry points (scanning them costs milliseconds: once)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def engine_names() -> tuple[str, ...]:
    """Names of installed engines, without importing them."""
    return tuple(sorted(_registered()))


def get_engine(name: str) -> Engine:
    """Load and instantiate the engine registered as ``name``."""
    ep = _registered().get(name)
    if ep is not None:
        return ep.load()()
    known = ", ".join(engine_names()) or "none installed"
    raise UsageError(
        f"unknown engine '{name}'", f"installed engines: {known} (see `orion engines`)"
    )
