"""How ``orion --help`` is arranged: the panels a researcher scans in order, and examples.

One table, applied after every command module has registered its commands, so that a
command module never needs to know where it is shown. Each command's ``--help`` ends with
its examples (Typer's epilog). The docs' CLI reference is generated from the same app.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

#: panel title → its commands, in the order ``orion --help`` shows them
PANELS: dict[str, tuple[str, ...]] = {
    "Submit and studies": ("submit", "eos", "converge", "workflow", "results"),
    "Watching": ("ls", "show", "watch", "logs", "wait", "stats", "path", "files"),
    "Acting": ("cancel", "retry", "move", "hold", "release", "priority", "rm", "reuse"),
    "Inside a job": ("progress",),
    "Scheduler and admin": (
        "poll",
        "adopt",
        "queues",
        "engines",
        "doctor",
        "db",
        "audit",
        "metrics",
    ),
}

#: command path (``"db upgrade"`` for a subcommand) → example lines, ``command  # what it does``
EXAMPLES: dict[str, tuple[str, ...]] = {
    "submit": (
        "orion submit Cu.cif -e emt --wait            # one job; wait and print the result",
        "orion submit structures/ --engine emt --tag screen-1   # one job array for many",
        "orion submit Si.cif --engine qe --params si-scf.toml --walltime 2h --ntasks 4",
        "orion submit many.extxyz --engine emt --pack auto   # many short calculations",
        "orion submit --script run.sbatch -- POSCAR.1   # your own batch script",
    ),
    "eos": (
        "orion eos Cu.cif --engine emt --points 7 --strain 0.05 --wait",
        "orion eos Cu.cif --engine emt --relax-first  # scale the relaxed cell",
    ),
    "converge": (
        "orion converge Si.cif --engine qe --sweep ecutwfc_ry=20:50:10 --tol 2 --wait",
        "orion converge Cu.cif --engine emt --sweep kspacing_per_a=0.4:0.2:-0.1",
    ),
    "workflow": ("orion workflow submit cu-relax-eos.toml Cu.cif", "orion workflow show 1"),
    "workflow submit": ("orion workflow submit cu-relax-eos.toml Cu.cif Ni.cif",),
    "workflow show": ("orion workflow show 1", "orion workflow show 1 --json"),
    "workflow retry": ("orion workflow retry 1 --failed -p mixing_beta=0.3",),
    "results": (
        "orion results --tag screen-1",
        "orion results --study 12 -f csv -o eos.csv",
        "orion results 1 2 3 -f extxyz -o relaxed.xyz",
    ),
    "ls": (
        "orion ls",
        "orion ls --status running --tag screen-1",
        "orion ls --since 2h -n 100 --page 2",
        "orion ls --count",
    ),
    "show": ("orion show 1", "orion show --slurm-id 1234_5", "orion show 1 --json"),
    "watch": ("orion watch", "orion watch --tag screen-1 --interval 5"),
    "logs": (
        "orion logs 1",
        "orion logs 1 --follow",
        "orion logs 1 --engine-output --attempt 2",
    ),
    "wait": (
        "orion wait 1 2 3",
        "orion wait --tag screen-1 --timeout 2h && orion results --tag screen-1",
    ),
    "stats": ("orion stats --since 7d", "orion stats --tag screen-1 --by engine --plot stats.png"),
    "cancel": (
        "orion cancel 12 13",
        "orion cancel --tag screen-1 --status queued",
        "orion cancel 12 --with-dependents",
    ),
    "retry": (
        "orion retry 12",
        "orion retry --tag screen-1 --status failed -p mixing_beta=0.3",
        "orion retry 12 --walltime 4h --partition long   # more time, another partition",
    ),
    "move": ("orion move 12 --partition long", "orion move --tag screen-1 --partition debug"),
    "path": ('cd "$(orion path 12)"',),
    "files": ("orion files 12", "orion files 12 --trajectory -o traj.extxyz"),
    "hold": ("orion hold 12", "orion hold --study 12"),
    "release": ("orion release 12", "orion release --study 12"),
    "priority": ("orion priority 20 12 13", "orion priority 5 --tag background"),
    "rm": ("orion rm 12 13 --yes", "orion rm --tag screen-1 --keep-results"),
    "progress": (
        'orion progress 40 "SCF step 12"',
        "orion progress --result energy_ev=-12.3 converged=true",
    ),
    "poll": (
        "orion poll",
        "* * * * * $HOME/.local/bin/orion poll --quiet   # crontab -e: every minute",
        "orion poll --loop 2m   # without cron: in screen/tmux, stop with Ctrl-C",
    ),
    "adopt": ("orion adopt 1234 1235",),
    "queues": ("orion queues", "orion queues --json"),
    "engines": ("orion engines", "orion engines --json"),
    "doctor": ("orion doctor",),
    "db": ("orion db upgrade", "orion db grant ann bob"),
    "db upgrade": ("orion db upgrade", "orion db upgrade --alongside-other-tables"),
    "db grant": ("orion db grant ann bob carol",),
    "reuse": ("orion reuse invalidate 12",),
    "reuse invalidate": ("orion reuse invalidate 12", "orion reuse invalidate --engine qe"),
    "audit": ("orion audit", "orion audit --user ann --since 2d"),
    "metrics": ("orion metrics", "orion metrics --textfile /var/lib/node_exporter/orion.prom"),
}


def epilog(path: str) -> str:
    """The ``--help`` epilog of one command: its examples, one a line.

    >>> print(epilog("doctor"))
    Examples:
      orion doctor
    """
    return "\n".join(["Examples:", *(f"  {line}" for line in EXAMPLES[path])])


class PanelGroup(TyperGroup):
    """The root command: lists commands in the panels' order, not registration order."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        order = [name for names in PANELS.values() for name in names]
        known = super().list_commands(ctx)
        return [n for n in order if n in known] + [n for n in known if n not in order]


def arrange(app: typer.Typer) -> None:
    """Put every command of ``app`` into its panel and give it (and its subcommands) examples."""
    panel_of = {name: panel for panel, names in PANELS.items() for name in names}
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        info.rich_help_panel = panel_of.get(name)
        info.epilog = epilog(name) if name in EXAMPLES else None
    for group in app.registered_groups:
        name = group.name or ""
        group.rich_help_panel = panel_of.get(name)
        group.epilog = epilog(name) if name in EXAMPLES else None
        if group.typer_instance is None:
            continue
        for sub in group.typer_instance.registered_commands:
            path = f"{name} {sub.name}"
            sub.epilog = epilog(path) if path in EXAMPLES else None
