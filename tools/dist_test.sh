#!/usr/bin/env bash
# Distributed testing:
#   bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py opts]
# (multi-machine settings: see dist_launch.sh)
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$DIR/dist_launch.sh" test.py "$3" "$1" "$2" "${@:4}"
