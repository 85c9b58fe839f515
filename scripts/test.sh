#!/usr/bin/env bash
# README command 2: set up if needed, then run the whole test suite (unit, integration, browser).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -k audio`.
set -euo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$PACK_DIR/scripts/setup.sh" --print-env)"
export COMFYUI_PATH
cd "$PACK_DIR"
exec "$HV_VENV/bin/python" -m pytest "$@"
