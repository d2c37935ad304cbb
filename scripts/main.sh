#!/usr/bin/env bash
# The main job: set up, train the autoencoder on real Fashion-MNIST (class 0 normal, the study's
# settings), evaluate it, then re-score the saved run to check it reproduces.
# Extra arguments go to `anomalia train`, e.g. scripts/main.sh --normal-class 6.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get-fashion-mnist.sh
name="main-$(date -u +%Y%m%d-%H%M%S)"
.venv/bin/anomalia train --method autoencoder --normal-class 0 --name "$name" "$@"
run_dir=$(ls -d runs/*/*/*/"$name")
.venv/bin/anomalia evaluate "$run_dir"
