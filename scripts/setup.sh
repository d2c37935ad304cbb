#!/usr/bin/env bash
# Create .venv and install anomalia with its development tools. Safe to re-run.
# torch==2.13.0 is installed first when no torch is importable: it is a small CPU build here,
# while a bare "torch" requirement could pull a multi-GB CUDA build. The package itself asks only
# for torch>=2.4, which an installed torch satisfies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
"${PIP[@]}" -e ".[dev,tensorboard,serve,ray]"
