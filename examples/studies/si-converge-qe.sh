#!/bin/sh
# Plane-wave cutoff convergence of silicon with Quantum ESPRESSO (seconds per value): one job
# per cutoff as one job array, then an analysis step that prints the first cutoff whose
# energy per atom is within 2 meV/atom of the largest one; convergence.png is in the
# analysis job's directory. For production, use your k-point mesh and a wider range.
set -e
here=$(dirname "$0")/..
orion converge "$here/structures/Si.cif" --engine qe --sweep ecutwfc_ry=20:50:10 \
  -p kpoints=2,2,2 -p smearing=none --tol 2 --tag si-ecut --wait
orion results --tag si-ecut --format csv -o si-ecut.csv
