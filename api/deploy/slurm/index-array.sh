#!/usr/bin/env bash
#SBATCH --job-name=tessera-index
#SBATCH --array=0-7
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --output=tessera-index-%A_%a.log
## For GPU embedding: enable the next line and add `--device cuda` to the tessera command below
## (after `npm run setup:cuda` in the checkout).
##SBATCH --gres=gpu:1

# Builds one Tessera index with a SLURM job array: task i of n indexes the shards with
# shard % n == i, every task writing into the same folder on a shared filesystem, so no merge
# step follows. Keep --array's task count a divisor of SHARDS (8 tasks, 8 shards: one each).
# Submit from the repository root (after npm ci), naming the data if it is elsewhere:
#   SLIDES=/shared/slides INDEX=/shared/tessera-index SHARDS=8 sbatch api/deploy/slurm/index-array.sh
# Options given to sbatch override the #SBATCH lines above (a smaller site: sbatch --array=0-3
# --cpus-per-task=2 --mem=4G …; the indexer's peak RSS is about 1.5 GiB with the default model).
# A resubmission resumes: slides already indexed and unchanged are skipped, so adding slides and
# submitting again indexes only the new ones. Tasks that start together create index.json once
# (an exclusive create) and never share a shard.
set -euo pipefail

SLIDES=${SLIDES:-/shared/slides}
METADATA=${METADATA:-$SLIDES/slides.csv}
INDEX=${INDEX:-/shared/tessera-index}
SHARDS=${SHARDS:-8}

# The metadata table is optional: without one, slide ids are file paths under SLIDES.
metadata=()
if [ -f "$METADATA" ]; then metadata=(--metadata "$METADATA"); fi

# The batch script is the array task's one process: no srun (a job step would ask the allocation
# for its CPUs again), and exec so that scancel's signal reaches the indexer itself.
cd "${SLURM_SUBMIT_DIR}"
exec node indexer/bin/tessera.js index --slides "$SLIDES" "${metadata[@]}" --out "$INDEX" \
  --shards "$SHARDS" --partition "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" \
  --read-threads "${SLURM_CPUS_PER_TASK:-1}"
