#!/usr/bin/env bash
# torchrun with mmengine's pytorch launcher, shared by dist_train.sh and
# dist_test.sh:  bash tools/dist_launch.sh TOOL.py NGPUS [tool arguments]
# Multi-machine: NNODES, NODE_RANK, MASTER_ADDR and PORT in the environment;
# PYTHON picks the interpreter.
set -euo pipefail
TOOL=$1
GPUS=$2
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHONPATH="$DIR/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$DIR/$TOOL" "${@:3}" --launcher pytorch
