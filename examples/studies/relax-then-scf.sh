#!/bin/sh
# A relax → single-point chain: the second job starts after the first completed, from its
# final structure (read on the compute node from the first job's result.json).
set -e
here=$(dirname "$0")/..
relax=$(orion submit "$here/structures/Cu.cif" --engine emt -p relax=true --name Cu-relax)
scf=$(orion submit --engine emt --from "$relax" --name Cu-scf)
orion submit "$here/structures/Cu.cif" --engine mock --after-any "$scf" --name collect
orion show "$scf"
