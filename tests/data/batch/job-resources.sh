#!/bin/bash
#SBATCH --job-name=orion-42-Si_scf__rm_-rf__
#SBATCH --comment=orion:42:1
#SBATCH --time=01:30:00
#SBATCH --nodes=1
#SBATCH --ntasks=4
#SBATCH --cpus-per-task=2
#SBATCH --chdir="/scratch/my jobs/42"
#SBATCH --output="/scratch/my jobs/42/attempt-1.out"
#SBATCH --error="/scratch/my jobs/42/attempt-1.out"
#SBATCH --nice=500
#SBATCH --partition=debug
#SBATCH --mem-per-cpu=2048M
#SBATCH --account="proj$1"
#SBATCH --qos=normal
#SBATCH --gres=gpu:2
#SBATCH --constraint="avx512&ib"
#SBATCH --signal=B:USR1@300
#SBATCH --exclusive
#SBATCH --reservation=maint
#SBATCH --comment="a b#c"
#SBATCH --requeue
# orion job 42, attempt 1
export ORION_JOB_ID=42
export ORION_ATTEMPT=1
cd '/scratch/my jobs/42' || exit 1
exec '/opt/orion venv/bin/python' -m orion_cli.jobrun '/scratch/my jobs/42'
