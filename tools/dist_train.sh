#!/usr/bin/env bash
# Distributed training:  bash tools/dist_train.sh CONFIG NGPUS [train.py opts]
# (multi-machine settings: see dist_launch.sh)
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$DIR/dist_launch.sh" train.py "$2" "$1" "${@:3}"
