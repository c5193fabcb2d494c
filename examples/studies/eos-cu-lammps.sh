#!/bin/sh
# Equation of state of copper with LAMMPS and the Foiles EAM potential (Cu_u3.eam from the
# LAMMPS potentials directory): the cell is relaxed first (minimize, relax_box=iso), then 7
# copies of the relaxed cell scaled by ±4 % run as one job array, then the fit.
set -e
here=$(dirname "$0")/..
orion eos "$here/structures/Cu.cif" --engine lammps -p pair_style=eam \
  -p potential_file=Cu_u3.eam --relax-first --points 7 --strain 0.04 --tag eos-cu-eam --wait
orion results --tag eos-cu-eam
