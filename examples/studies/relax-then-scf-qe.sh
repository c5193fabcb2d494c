#!/bin/sh
# Quantum ESPRESSO relax → scf chain: pw.x relaxes the atoms (calculation=relax), then an scf
# starts after it from pw.x's final positions (read on the compute node from the relax job's
# result.json). Small settings so that it runs in seconds; use yours for production.
set -e
here=$(dirname "$0")/..
qe="-p ecutwfc_ry=20 -p kpoints=2,2,2 -p smearing=none"
relax=$(orion submit "$here/structures/Si.cif" --engine qe -p calculation=relax $qe --name Si-relax)
scf=$(orion submit --engine qe --from "$relax" -p calculation=scf $qe --name Si-scf)
orion wait "$relax" "$scf"
orion show "$scf"
