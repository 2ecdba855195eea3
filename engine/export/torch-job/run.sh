#!/usr/bin/env bash
# Trains this exported Excitor job with torchrun (README.md).
#   bash run.sh                     every GPU of this machine (one process on a machine without GPUs)
#   NPROC=2 bash run.sh             two processes on this machine
#   NNODES=4 RDZV=node0:29500 bash run.sh     on each of four machines (Slurm: see README.md)
#   bash run.sh --fsdp --out /scratch/run     what follows goes to the trainer (python -m excitor_torch --help)
# A worker that fails is restarted (MAX_RESTARTS, default 3) and continues from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
NPROC="${NPROC:-$("$PYTHON" -c 'import torch; print(max(1, torch.cuda.device_count()))')}"
NNODES="${NNODES:-1}"
launch=(--nproc_per_node "$NPROC" --max_restarts "${MAX_RESTARTS:-3}")
if [ "$NNODES" = 1 ]; then
  launch+=(--standalone)
else
  launch+=(--nnodes "$NNODES" --rdzv_backend c10d --rdzv_endpoint "${RDZV:?set RDZV=host:port of the first machine}" --rdzv_id "${RDZV_ID:-excitor}")
fi
# torch 1.x's torchrun cannot parse its own default stream options on Python 3.11 (its IntFlag
# lookup misses 0): ask it to tee stdout, which it can parse and which changes nothing on the console.
if "$PYTHON" -c 'import sys, torch; sys.exit(not (sys.version_info >= (3, 11) and torch.__version__ < "2"))'; then
  launch+=(--redirects 1 --tee 1)
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m torch.distributed.run "${launch[@]}" -m excitor_torch "$@"
