"""Pure: the usual remedy for an engine's common failures, as ``orion show`` prints it.

Each entry is (pattern in the error orion recorded, what usually fixes it). The patterns
match the engine's own words (pw.x's ``Error in routine ...`` text, LAMMPS's ``ERROR:``
line); the remedies are the ones the QE and LAMMPS user guides and mailing lists give.
"""

from __future__ import annotations

import re

#: (engine, pattern, remedy); the first match wins
REMEDIES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "qe",
        re.compile(r"convergence NOT achieved", re.I),
        "the SCF did not converge: retry with a gentler mixing and more steps, "
        "e.g. `orion retry ID -p mixing_beta=0.3 -p electron_maxstep=200`; for a metal or a "
        "small gap add smearing (-p smearing=marzari-vanderbilt)",
    ),
    (
        "qe",
        re.compile(r"too few bands", re.I),
        "nbnd is below the number of occupied bands: retry with more, e.g. "
        "`orion retry ID -p system.nbnd=N` with N at least half the valence electrons "
        "(+20 % for a metal), or drop nbnd to let pw.x choose",
    ),
    (
        "qe",
        re.compile(r"checkallsym|not orthogonal operation|symmetry operation", re.I),
        "the cell's symmetry is inconsistent at pw.x's tolerance (a cell written with few "
        "digits): retry with `orion retry ID -p system.nosym=true`, or give the cell with "
        "more digits (or the right ibrav)",
    ),
    (
        "qe",
        re.compile(r"S matrix not positive definite|cholesky", re.I),
        "the overlap matrix is singular: usually atoms too close together (check the "
        "structure) or too low a cutoff for the pseudopotentials; try "
        "`orion retry ID -p electrons.diagonalization=cg` after checking the distances",
    ),
    (
        "lammps",
        re.compile(r"Lost atoms", re.I),
        "atoms flew out of the box: the timestep is too large or atoms start too close "
        "(minimise first); retry with a smaller timestep, e.g. `orion retry ID -p "
        "timestep_fs=0.5`, or check the structure and the potential",
    ),
    (
        "lammps",
        re.compile(r"Out of range atoms", re.I),
        "atoms moved too far in one step (huge forces): use a smaller timestep, minimise "
        "the structure first (`orion retry ID -p timestep_fs=0.5`), and check the potential "
        "and the charges",
    ),
)


def remedy(engine: str, error: str | None, job_id: int | str = "ID") -> str | None:
    """The usual fix for ``engine``'s failure ``error``, or None when none is known.

    ``job_id`` goes into the example commands.

    >>> remedy("qe", "pw.x: Error in routine setup (1): too few bands")[:30]
    'nbnd is below the number of oc'
    >>> remedy("lammps", "ERROR: Lost atoms: original 256 current 1")[:27]
    'atoms flew out of the box: '
    >>> remedy("emt", "something else") is None
    True
    """
    if not error:
        return None
    for name, pattern, text in REMEDIES:
        if name == engine and pattern.search(error):
            return text.replace("orion retry ID", f"orion retry {job_id}")
    return None
