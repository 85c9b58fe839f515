"""README command 1 (`scripts/run.sh`) on a fresh data folder starts ComfyUI with the pack and a clean log.

The script runs as a user runs it (its own setup step included), on the host this session tests
(HV_COMFYUI), with a new HV_BASE_DIR: no models, no user data, no database yet.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests
from comfy_harness import COMFYUI_PATH, PACK_FOLDER_NAME, free_port, pack_node_ids

PACK_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
# Anything a user would read as something gone wrong.
TROUBLE = re.compile(r"traceback|error|exception|failed|cannot import|warning", re.IGNORECASE)


def test_run_command_starts_with_a_clean_log(tmp_path):
    port = free_port()
    base = tmp_path / "data"
    log_path = tmp_path / "run.log"
    env = dict(os.environ, HV_COMFYUI=str(COMFYUI_PATH), HV_PORT=str(port), HV_BASE_DIR=str(base), HV_SKIP_APT="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["bash", str(PACK_ROOT / "scripts" / "run.sh")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: run.sh execs ComfyUI, which is stopped with it
        )
    try:
        deadline = time.monotonic() + float(os.environ.get("HV_SERVER_START_TIMEOUT", "300"))
        info = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                info = requests.get(f"http://127.0.0.1:{port}/object_info", timeout=10).json()
                break
            except (requests.ConnectionError, requests.Timeout, ValueError):
                time.sleep(1)
        text = log_path.read_text(errors="replace")
        assert info is not None, f"run.sh did not serve ComfyUI (exit {process.poll()}):\n{text[-4000:]}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert not [n for n in pack_node_ids() if n not in info], "pack nodes missing from /object_info"
    server_log = log_path.read_text(errors="replace")
    # Setup's own progress lines ("[setup] ...") may mention what it installs; only ComfyUI's lines count.
    trouble = [line for line in server_log.splitlines() if TROUBLE.search(line) and not line.startswith("[setup]")]
    assert not trouble, "run.sh's log reports trouble:\n" + "\n".join(trouble) + "\n---\n" + server_log[-4000:]
    assert (base / "custom_nodes" / PACK_FOLDER_NAME).resolve() == PACK_ROOT
    assert (base / "user" / "comfyui.db").is_file(), "the database was not created in the data folder"
