"""The EOS fit step's answers (V0 per atom, a0 of a cubic cell, B′, RMS residual) against
ASE's own fit and the analytic derivatives; and the plot, looked at as an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orion_cli.engines.eos_fit import cell_answers, cubic_lattice, fit_eos

#: a Si-like E(V) with QE-sized energies (issue: "-277.94 eV ticks" clipped the label)
VOLUMES_A3 = list(np.linspace(36.5, 45.3, 9))
B_EV_PER_A3 = 88.7 / 160.21766208


def _energies(offset_ev: float) -> list[float]:
    return [
        offset_ev + 0.5 * B_EV_PER_A3 / 40.87 * (v - 40.87) ** 2 + 1e-3 * (v - 40.87) ** 3
        for v in VOLUMES_A3
    ]


def test_eos_png_keeps_the_energy_label_inside_the_image(tmp_path: Path) -> None:
    """Issue 26 #7: with energies near -278 eV the tick labels are long; the axis label must
    not be cut at the left edge. Ink in the image's first columns is a clipped label."""
    import matplotlib.image

    fit_eos(VOLUMES_A3, _energies(-278.09), "birchmurnaghan", tmp_path / "eos.png")
    pixels = matplotlib.image.imread(tmp_path / "eos.png")
    left_edge = pixels[:, :3, :3]  # RGB of the three leftmost columns
    assert left_edge.min() > 0.95, "something is drawn on the image's left edge"
    ink_columns = np.where(pixels[:, :, :3].min(axis=(0, 2)) < 0.5)[0]
    assert ink_columns.min() >= 3  # the label's first column is inside the image


def test_birch_murnaghan_answers_match_ase(tmp_path: Path) -> None:
    from ase.eos import EquationOfState, birchmurnaghan

    energies = _energies(-278.09)
    fit = fit_eos(VOLUMES_A3, energies, "birchmurnaghan", None)
    eos = EquationOfState(VOLUMES_A3, energies, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    e0_p, b0_p, bp_p, v0_p = eos.eos_parameters
    assert fit["v0_a3"] == pytest.approx(v0, rel=1e-12)
    assert fit["e0_ev"] == pytest.approx(e0, abs=1e-12)
    assert fit["b_prime"] == pytest.approx(bp_p, rel=1e-12)
    residual = np.array(energies) - birchmurnaghan(np.array(VOLUMES_A3), e0_p, b0_p, bp_p, v0_p)
    assert fit["rms_residual_mev"] == pytest.approx(1000 * np.sqrt(np.mean(residual**2)))
    assert fit["rms_residual_mev"] > 0.1  # the cubic term this form does not follow exactly


def test_cubic_polynomial_b_prime_matches_the_analytic_derivative() -> None:
    """p3 has no B′ parameter: orion differentiates the fitted curve; E = c0 + c1 V + c2 V² +
    c3 V³ gives B = V (2 c2 + 6 c3 V) and B′ = -(2 c2 + 12 c3 V0) / (2 c2 + 6 c3 V0)."""
    from ase.eos import EquationOfState

    energies = _energies(-10.0)
    fit = fit_eos(VOLUMES_A3, energies, "p3", None)
    eos = EquationOfState(VOLUMES_A3, energies, eos="p3")
    v0, _, _ = eos.fit()
    _, _, c2, c3 = eos.eos_parameters
    expected = -(2 * c2 + 12 * c3 * v0) / (2 * c2 + 6 * c3 * v0)
    assert fit["b_prime"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("build", "lattice", "a_a"),
    [
        (lambda: __import__("ase.build").build.bulk("Si", "diamond", a=5.43), "FCC", 5.43),
        (lambda: __import__("ase.build").build.bulk("Cu", "fcc", a=3.6, cubic=True), "CUB", 3.6),
        (lambda: __import__("ase.build").build.bulk("Fe", "bcc", a=2.87), "BCC", 2.87),
    ],
)
def test_lattice_constant_of_cubic_cells(build, lattice: str, a_a: float) -> None:  # type: ignore[no-untyped-def]
    """a0 from V0 for primitive fcc/bcc and conventional cubic cells: at the input volume it
    is the input lattice constant; at twice the volume, 2^(1/3) times it."""
    atoms = build()
    found = cubic_lattice(atoms)
    assert found["lattice"] == lattice
    volume = atoms.get_volume()
    answers = cell_answers(volume, {"n_atoms": len(atoms), **found})
    assert answers["a0_a"] == pytest.approx(a_a, rel=1e-9)
    assert answers["v0_per_atom_a3"] == pytest.approx(volume / len(atoms))
    assert cell_answers(2 * volume, found)["a0_a"] == pytest.approx(a_a * 2 ** (1 / 3))


def test_no_lattice_constant_for_a_hexagonal_cell() -> None:
    from ase.build import bulk

    assert cubic_lattice(bulk("Mg", "hcp", a=3.2, c=5.2)) == {}
