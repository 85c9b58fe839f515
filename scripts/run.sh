#!/usr/bin/env bash
# README command 1: set up if needed, then start ComfyUI on 127.0.0.1:8188 with the pack loaded.
#   HV_PORT (default 8188), HV_BASE_DIR (models/, input/, output/ ...; default ~/ComfyUI-HumanVideo-data)
set -euo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$PACK_DIR/scripts/setup.sh" --print-env)"
PORT="${HV_PORT:-8188}"
BASE="${HV_BASE_DIR:-$HOME/ComfyUI-HumanVideo-data}"
mkdir -p "$BASE/custom_nodes" "$BASE/models" "$BASE/input" "$BASE/output"
ln -sfn "$PACK_DIR" "$BASE/custom_nodes/ComfyUI-HumanVideo"
echo "ComfyUI-HumanVideo: open http://127.0.0.1:$PORT  (models go in $BASE/models; workflows: Workflow > Browse Templates)"
DEVICE_ARGS=()
if ! "$HV_VENV/bin/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "No CUDA GPU found: running on the CPU (slow; fine for trying the workflows with small settings)."
  DEVICE_ARGS=(--cpu)
fi
cd "$COMFYUI_PATH"
exec "$HV_VENV/bin/python" main.py --listen 127.0.0.1 --port "$PORT" --base-directory "$BASE" \
  --disable-auto-launch "${DEVICE_ARGS[@]}" "$@"
