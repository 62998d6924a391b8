#!/usr/bin/env bash
#SBATCH --job-name=tessera-index
#SBATCH --array=0-7
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --output=tessera-index-%A_%a.log
## For GPU embedding: enable the next line and add `--device cuda` to the tessera command below
## (after `npm run setup:cuda` in the checkout).
##SBATCH --gres=gpu:1

# Builds one Tessera index with a SLURM job array: task i of n indexes the shards with
# shard % n == i, every task writing into the same folder on a shared filesystem, so no merge
# step follows. Keep --array's task count a divisor of --shards (8 tasks, 8 shards: one each).
# Submit from the repository root (after npm ci), naming the data if it is elsewhere:
#   SLIDES=/shared/slides INDEX=/shared/tessera-index sbatch api/deploy/slurm/index-array.sh
# A resubmission resumes: slides already indexed and unchanged are skipped.
set -euo pipefail

SLIDES=${SLIDES:-/shared/slides}
METADATA=${METADATA:-$SLIDES/slides.csv}
INDEX=${INDEX:-/shared/tessera-index}

cd "${SLURM_SUBMIT_DIR}"
srun node indexer/bin/tessera.js index --slides "$SLIDES" --metadata "$METADATA" --out "$INDEX" \
  --shards 8 --partition "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}"
