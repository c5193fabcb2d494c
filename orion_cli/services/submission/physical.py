"""Refuse structures no engine can compute: non-finite numbers, flat cells, atoms on atoms.

Run on every frame where structures are read (the reader process of big submits too). The
close-atoms search is a k-d tree over the atoms and those periodic images that lie within
the cut-off of the cell, so it costs O(N log N) for N atoms whatever the cell's size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

#: closer than this is no molecule or crystal (H₂'s bond, the shortest there is, is 0.74 Å)
MIN_DISTANCE_A = 0.5
#: a periodic cell whose lattice planes are closer than this is degenerate (or needs reducing)
MIN_PLANE_SPACING_A = 0.1
#: up to this many atom–point distances, compute them all (faster than a tree for small cells)
BRUTE_FORCE_PAIRS = 200_000
_ALLOW_HINT = "fix the structure, or pass --allow-close-atoms if this is deliberate"


def check_atoms(atoms: Atoms, where: str, min_distance_a: float | None = MIN_DISTANCE_A) -> None:
    """Raise a UsageError naming ``where`` if ``atoms`` cannot be a physical structure.

    ``min_distance_a`` None skips the close-atoms check (``--allow-close-atoms``); finite
    numbers and a cell with volume are always required.
    """
    import numpy as np

    positions = np.asarray(atoms.positions, dtype=float)
    cell = np.asarray(atoms.cell[:], dtype=float)
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise UsageError(
            f"{where}: position of atom {bad[0]} ({atoms[bad[0]].symbol}) "
            "is not finite (NaN or infinity)",
            "fix the structure file",
        )
    if not np.isfinite(cell).all():
        raise UsageError(
            f"{where}: the cell is not finite (NaN or infinity)",
            "fix the lattice of the structure file",
        )
    pbc = np.asarray(atoms.pbc, dtype=bool)
    spacings = _plane_spacings_a(cell[pbc])
    if spacings.size and spacings.min() < MIN_PLANE_SPACING_A:
        volume = abs(np.linalg.det(cell)) if pbc.all() else float("nan")
        size = f"volume {volume:.3g} Å³, " if pbc.all() else ""
        raise UsageError(
            f"{where}: the periodic cell has (near) zero volume ({size}lattice planes "
            f"{spacings.min():.3g} Å apart, need ≥ {MIN_PLANE_SPACING_A} Å)",
            "fix the lattice vectors (a zero or repeated vector?) of the structure file",
        )
    if min_distance_a is not None:
        pair = closest_pair(positions, cell, pbc, min_distance_a)
        if pair is not None:
            i, j, distance = pair
            first = f"atom {i} ({atoms[i].symbol})"
            what = (
                f"{first} is {distance:.3f} Å from its own periodic image"
                if i == j
                else f"atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) are "
                f"{distance:.3f} Å apart"
            )
            raise UsageError(f"{where}: {what} (closer than {min_distance_a} Å)", _ALLOW_HINT)


def _plane_spacings_a(vectors: Any) -> Any:
    """Distances between the lattice planes spanned by the periodic ``vectors`` (k × 3).

    In 3D, d_i = V / |b_j × b_k|; for 1 or 2 periodic directions the same within their span.
    """
    import numpy as np

    if not len(vectors):
        return np.zeros(0)
    gram = vectors @ vectors.T
    if abs(np.linalg.det(gram)) <= 1e-12 * max(1.0, float(np.abs(gram).max())) ** len(vectors):
        return np.zeros(len(vectors))
    return 1.0 / np.sqrt(np.diag(np.linalg.inv(gram)))


def closest_pair(
    positions: Any, cell: Any, pbc: Any, cutoff_a: float
) -> tuple[int, int, float] | None:
    """Return (i, j, distance) of the closest two atoms if closer than ``cutoff_a``, else None.

    Periodic images count (j == i: an atom and its own image). The cell must have passed the
    plane-spacing check, so only ``ceil(cutoff / spacing)`` image layers are needed.
    """
    import numpy as np

    n_atoms = len(positions)
    points, owner = positions, np.arange(n_atoms)
    if pbc.any():
        points, owner = _with_images(positions, cell, pbc, cutoff_a)
    if len(points) < 2:
        return None
    if n_atoms * len(points) <= BRUTE_FORCE_PAIRS:  # small cells: all distances at once
        distances = np.linalg.norm(points[:n_atoms, None, :] - points[None, :, :], axis=2)
        distances[np.arange(n_atoms), np.arange(n_atoms)] = np.inf  # not an atom to itself
        row, col = np.unravel_index(int(np.argmin(distances)), distances.shape)
        if distances[row, col] >= cutoff_a:
            return None
        return int(row), int(owner[col]), float(distances[row, col])
    unique, first, counts = np.unique(
        points[:n_atoms], axis=0, return_index=True, return_counts=True
    )
    if (counts > 1).any():  # atoms on the same spot: a tree cannot split them, report at once
        i = int(first[np.flatnonzero(counts > 1)[0]])
        j = int(np.flatnonzero((points[:n_atoms] == points[i]).all(axis=1))[1])
        return i, j, 0.0
    from scipy.spatial import cKDTree  # a large cell only: the import is 0.3 s

    tree = cKDTree(points)
    distances, indices = tree.query(points[:n_atoms], k=2, distance_upper_bound=cutoff_a)
    near = np.flatnonzero(np.isfinite(distances[:, 1]))
    if not near.size:
        return None
    i = int(near[np.argmin(distances[near, 1])])
    return i, int(owner[indices[i, 1]]), float(distances[i, 1])


def _with_images(positions: Any, cell: Any, pbc: Any, cutoff_a: float) -> tuple[Any, Any]:
    """The atoms (wrapped into the cell), then their images within ``cutoff_a`` of the cell."""
    import itertools

    import numpy as np
    from ase.cell import Cell

    full = Cell(cell).complete()[:]  # non-periodic directions get any independent vector
    fractional = np.linalg.solve(full.T, positions.T).T
    fractional[:, pbc] %= 1.0
    spacings = _plane_spacings_a(full)
    reach = np.where(pbc, cutoff_a / spacings, 0.0)  # the margin, in fractional units
    layers = [range(-int(np.ceil(r)), int(np.ceil(r)) + 1) for r in reach]
    shifts = np.array([s for s in itertools.product(*layers) if any(s)], dtype=float)
    moved = fractional[None, :, :] + shifts[:, None, :]  # (images, atoms, 3)
    keep = ((moved >= -reach) & (moved <= 1 + reach)).all(axis=2)
    images = moved[keep] @ full
    owner = np.nonzero(keep)[1]
    return (
        np.concatenate([fractional @ full, images]),
        np.concatenate([np.arange(len(positions)), owner]),
    )
