#!/usr/bin/env bash
# README command 1: set up if needed, then start ComfyUI on 127.0.0.1:8188 with the pack loaded.
#   HV_PORT (default 8188), HV_BASE_DIR (models/, input/, output/, user/ ...; default ~/ComfyUI-HumanVideo-data)
#   HV_COMFYUI=<ComfyUI checkout> serves that ComfyUI instead of 0.3.75 (see scripts/setup.sh)
set -euo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
eval "$(bash "$PACK_DIR/scripts/setup.sh" --print-env)"
PORT="${HV_PORT:-8188}"
BASE="${HV_BASE_DIR:-$HOME/ComfyUI-HumanVideo-data}"
mkdir -p "$BASE/custom_nodes" "$BASE/models" "$BASE/input" "$BASE/output" "$BASE/user"
BASE="$(cd "$BASE" && pwd)"  # absolute: ComfyUI runs from its own folder
ln -sfn "$PACK_DIR" "$BASE/custom_nodes/ComfyUI-HumanVideo"
echo "ComfyUI-HumanVideo on $HV_HOST_LABEL: open http://127.0.0.1:$PORT  (models go in $BASE/models; workflows: Workflow > Browse Templates)"
DEVICE_ARGS=()
if ! "$HV_VENV/bin/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "No CUDA GPU found: running on the CPU (slow; fine for trying the workflows with small settings)."
  DEVICE_ARGS=(--cpu)
fi
cd "$COMFYUI_PATH"
# Core's default database sits inside the ComfyUI tree (its user/ folder, absent in a fresh tree); keep it
# with the other user data in the base directory.
exec "$HV_VENV/bin/python" main.py --listen 127.0.0.1 --port "$PORT" --base-directory "$BASE" \
  --database-url "sqlite:///$BASE/user/comfyui.db" --disable-auto-launch "${DEVICE_ARGS[@]}" "$@"
