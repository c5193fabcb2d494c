"""Named queues, and the layers of a submit's resources (resolved by ``resources.resolve``).

A site or user writes, in ``orion.toml`` or the user config::

    [queues.short]
    partition = "debug"
    walltime_s = 1800
    priority = 12

    [queues.gpu]
    partition = "gpu"
    qos = "gpu"
    gpus = 1
    setup = ["module load cuda/12"]

``orion submit --queue short`` takes those values; a flag given on the command line wins
over the queue's value, which wins over the settings (``walltime_s`` at the top level,
``ORION_WALLTIME_S``, the defaults). ``setup`` lines run after the global ones and before
an engine's own (:mod:`orion_cli.site`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orion_cli.errors import ConfigError, UsageError
from orion_cli.resources import (
    RESOURCE_FIELDS,
    RESOURCE_KINDS,
    ResourceAsk,
    Resources,
    coerce_value,
    resolve,
)
from orion_cli.site import setup_lines
from orion_cli.units import format_walltime

if TYPE_CHECKING:
    from orion_cli.config import Settings

QUEUE_KEYS = (*RESOURCE_FIELDS, "setup")
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_queue_table(name: str, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Read one ``[queues.NAME]`` table: known keys, values of the right type.

    >>> check_queue_table("short", {"walltime_s": "1800", "partition": "debug"}, "t")
    {'walltime_s': 1800, 'partition': 'debug'}
    """
    if not _QUEUE_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: '{name}' is not a queue name",
            "use letters, digits, '_', '.', '-' (at most 64)",
        )
    checked: dict[str, Any] = {}
    for key, value in table.items():
        if key not in QUEUE_KEYS:
            raise ConfigError(
                f"{where}: unknown key '{key}'", f"a queue may set: {', '.join(QUEUE_KEYS)}"
            )
        if key == "setup":
            checked[key] = setup_lines(value, f"{where} setup")
        else:
            checked[key] = coerce_value(key, RESOURCE_KINDS[key], value, where)
    return checked


def queue_table(settings: Settings, queue: str) -> dict[str, Any]:
    """The values of queue ``queue`` ({} for none); an unknown name is a usage error."""
    if not queue:
        return {}
    if queue not in settings.queues:
        known = ", ".join(sorted(settings.queues)) or "none are configured"
        raise UsageError(
            f"unknown queue '{queue}' (known: {known})",
            "pick one of those, or add [queues." + queue + "] to orion.toml "
            "(orion queues lists them)",
        )
    return settings.queues[queue]


def settings_layer(settings: Settings, *names: str) -> ResourceAsk:
    """The settings' resources (``names``; all by default), each named by where it was set."""
    return ResourceAsk(
        {name: getattr(settings.resources, name) for name in names or RESOURCE_FIELDS},
        {name: settings.sources.get(name, "the defaults") for name in names or RESOURCE_FIELDS},
    )


def resolve_resources(
    settings: Settings, queue: str, requested: Mapping[str, Any] | ResourceAsk
) -> Resources:
    """The resources of a submit: flags > queue ``queue`` > settings; every value checked.

    ``requested`` holds the values given on the command line (absent or None: not given).
    A value is named in an error by its flag, or by where it came from.
    """
    if not isinstance(requested, ResourceAsk):
        requested = ResourceAsk.of(
            **{name: value for name, value in requested.items() if name in RESOURCE_FIELDS}
        )
    table = queue_table(settings, queue)
    where_queue = f"[queues.{queue}] in {settings.queue_sources.get(queue, 'the configuration')}"
    queued = ResourceAsk.of(
        where_queue, **{name: value for name, value in table.items() if name in RESOURCE_FIELDS}
    )
    return resolve(requested, queued, settings_layer(settings))


def queue_rows(settings: Settings) -> list[list[str]]:
    """One row per named queue: name, partition, qos, account, priority, walltime, other."""

    rows = []
    for name in sorted(settings.queues):
        table = settings.queues[name]
        shown_keys = ("partition", "qos", "account", "priority", "walltime_s", "setup")
        other = ", ".join(f"{k}={_text(v)}" for k, v in table.items() if k not in shown_keys)
        if table.get("setup"):
            other = ", ".join(filter(None, [other, f"setup: {len(table['setup'])} lines"]))
        rows.append(
            [
                name,
                table.get("partition", ""),
                table.get("qos", ""),
                table.get("account", ""),
                str(table.get("priority", "")),
                format_walltime(table["walltime_s"]) if "walltime_s" in table else "",
                other,
                settings.queue_sources.get(name, ""),
            ]
        )
    return rows


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)
