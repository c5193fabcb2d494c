"""``orion stats --plot FILE.png``: run times per group (box plot) and outcomes (bars).

matplotlib is imported here only, through its object API and the Agg canvas (no pyplot,
no display, no global state). The picture is ``WIDTH_PX`` × ``HEIGHT_PX``.
"""

from __future__ import annotations

from pathlib import Path

from orion_cli.errors import UsageError
from orion_cli.outfile import check_output_path, open_output
from orion_cli.services.queries.stats import Stats

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 4.5, 100
WIDTH_PX, HEIGHT_PX = int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI)
#: outcome bars, left to right: (label, colour)
OUTCOMES = (
    ("completed", "#2ca02c"),
    ("failed", "#d62728"),
    ("cancelled", "#ff7f0e"),
    ("active", "#1f77b4"),
)
MAX_GROUPS = 20  # more groups: the largest 20 are drawn


def check_plot_path(path: Path) -> None:
    """Refuse a plot path that cannot be written, before anything is computed."""
    if path.suffix.lower() != ".png":
        raise UsageError(f"plot file '{path}' does not end in .png", "write e.g. --plot stats.png")
    check_output_path(path)


def _unit(max_s: float) -> tuple[str, float]:
    """The unit to draw durations in: seconds, minutes or hours.

    >>> _unit(30), _unit(600), _unit(20000)
    (('s', 1.0), ('min', 60.0), ('h', 3600.0))
    """
    if max_s >= 3 * 3600:
        return "h", 3600.0
    if max_s >= 300:
        return "min", 60.0
    return "s", 1.0


def write_plot(stats: Stats, path: Path) -> None:
    """Draw ``stats`` into a PNG at ``path`` (written under a temporary name, then renamed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = stats.groups[:MAX_GROUPS]
    labels = [g.key for g in groups]
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)
    runs_ax, outcome_ax = figure.subplots(1, 2)
    rate = stats.total.success_rate
    figure.suptitle(
        f"{stats.total.jobs} jobs by {stats.by}"
        + (
            f": {rate * 100:.1f}% of {stats.total.ended} ended jobs completed"
            if rate is not None
            else ""
        )
    )
    runs = [g.run_values_s for g in groups]
    longest = max((max(r) for r in runs if r), default=0.0)
    unit, scale = _unit(longest)
    positions = list(range(1, len(labels) + 1))
    if any(runs):
        runs_ax.boxplot(
            [[v / scale for v in r] for r in runs],
            positions=positions,
            flierprops={"markersize": 3, "alpha": 0.5},
        )
    else:
        runs_ax.text(0.5, 0.5, "no finished runs yet", ha="center", va="center")
    runs_ax.set_xticks(positions, labels)
    runs_ax.set_ylabel(f"run time ({unit})")
    runs_ax.set_title("run time per job")
    bottom = [0] * len(groups)
    for outcome, colour in OUTCOMES:
        heights = [_outcome_count(g.counts, outcome) for g in groups]
        outcome_ax.bar(positions, heights, bottom=bottom, color=colour, label=outcome)
        bottom = [a + b for a, b in zip(bottom, heights, strict=True)]
    outcome_ax.set_xticks(positions, labels)
    outcome_ax.set_ylabel("jobs")
    outcome_ax.set_title("outcomes")
    outcome_ax.set_ylim(0, max(bottom, default=0) * 1.3 or 1)  # room for the legend
    outcome_ax.legend(loc="upper right", fontsize="small", ncols=2)
    if len(labels) > 4 or max(map(len, labels), default=0) > 10:
        for ax in (runs_ax, outcome_ax):
            ax.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    with open_output(path, binary=True) as out:
        figure.savefig(out, format="png", dpi=DPI)


def _outcome_count(counts: dict[str, int], outcome: str) -> int:
    if outcome == "active":
        return sum(counts.get(status, 0) for status in ("created", "queued", "running"))
    return counts.get(outcome, 0)
