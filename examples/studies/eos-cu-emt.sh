#!/bin/sh
# Equation of state of copper with EMT (seconds on a laptop): 7 scaled cells as one job
# array, then a Birch–Murnaghan fit after them. Prints V0, E0 and B; eos.png is in the
# fit job's directory.
set -e
here=$(dirname "$0")/..
orion eos "$here/structures/Cu.cif" --engine emt --points 7 --strain 0.05 --tag eos-cu --wait
orion results --tag eos-cu --format csv -o eos-cu.csv
