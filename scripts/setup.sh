#!/usr/bin/env bash
# Set orion up on this machine (idempotent; re-running is cheap).
#
#   scripts/setup.sh             Python virtual environment .venv with orion and its test tools.
#                                Enough for the embedded defaults: SQLite, and SLURM where
#                                sbatch is on PATH (else the local scheduler).
#   scripts/setup.sh --docs      Also the documentation tools (MkDocs, Material, mkdocstrings).
#   scripts/setup.sh --services  Also, as root on Debian: the documentation tools, the engines
#                                (Quantum ESPRESSO, LAMMPS; CHGNet, SevenNet on CPU torch), PostgreSQL started, and a real
#                                one-node SLURM cluster with accounting (scripts/slurm-up.sh)
#                                -- what the test suite needs.
#
# Environment: PYTHON (interpreter for the venv, default python3, must be >= 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

services=0
docs=0
for arg in "$@"; do
  case "$arg" in
    --services) services=1; docs=1 ;;
    --docs) docs=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --docs, --services or nothing)" >&2; exit 2 ;;
  esac
done
log() { printf '[setup] %s\n' "$*"; }

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup.sh: $PYTHON is older than 3.11; set PYTHON=python3.11 (or newer)" >&2; exit 2; }
[ -x .venv/bin/python ] || { log "creating .venv"; "$PYTHON" -m venv .venv; }
log "installing orion into .venv"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
if [ "$services" = 1 ]; then
  # the MLIP engines (chgnet, sevennet) too: torch pinned to its CPU build
  log "installing the documentation tools and the MLIP engines into .venv"
  .venv/bin/python -m pip install -q -e '.[dev,docs,ml]'
elif [ "$docs" = 1 ]; then
  log "installing the documentation tools into .venv"
  .venv/bin/python -m pip install -q -e '.[dev,docs]'
fi

ready() {  # what a plain `orion submit` uses here: SLURM where sbatch is on PATH
  log "done: .venv/bin/orion is ready: $(.venv/bin/python -c \
    'from orion_cli.config import load_settings; from orion_cli.services.admin.doctor import defaults_line; print(defaults_line(load_settings()))')"
}
[ "$services" = 1 ] || { ready; exit 0; }

[ "$(id -u)" = 0 ] || { echo "setup.sh --services needs root (apt-get, daemons)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
pkgs=(quantum-espresso quantum-espresso-data lammps postgresql)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=900 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

pg_version=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
  log "starting PostgreSQL $pg_version"
  pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.2
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { echo "PostgreSQL did not come up" >&2; exit 1; }

log "bringing up the one-node SLURM cluster"
bash scripts/slurm-up.sh
log "engines, PostgreSQL and SLURM are up"
ready
