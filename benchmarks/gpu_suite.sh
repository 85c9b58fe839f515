#!/usr/bin/env bash
# One command for every GPU number: runs benchmarks/gpu_suite.py with the repository's venv and ComfyUI host.
# Uses $HV_VENV and $COMFYUI_PATH when both are set (a prepared machine), else scripts/setup.sh's paths.
# Arguments go to the driver, e.g. `--out DIR`, `--sections humo_1_7b_480p latentsync`, `--tiny --out DIR`.
set -euo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${HV_VENV:-}" ] || [ -z "${COMFYUI_PATH:-}" ]; then
  eval "$(bash "$PACK_DIR/scripts/setup.sh" --print-env)"
fi
export COMFYUI_PATH
cd "$PACK_DIR"
exec "$HV_VENV/bin/python" benchmarks/gpu_suite.py "$@"
