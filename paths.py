"""Where the pack's files come from: the one place that lists and resolves model and input files.

Every file or folder a node reads is chosen by name and resolved here, confined to the folders ComfyUI
is configured with for that kind (``folder_paths``, including ``extra_model_paths.yaml``). A name is
taken relative to one of those folders; absolute names, ``~``, ``..`` and symlinks that lead out of every
folder of the kind are refused with one message that does not tell whether the outside path exists.
Library code under ``media/``, ``loaders/`` and ``models/`` receives the resolved paths.

Core keys (diffusion_models, vae, text_encoders, audio_encoders, loras) are used as they are; only
files core has no place for get a key of their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import folder_paths

from .media import face_detect

# key -> (folder name under ComfyUI's models directory, extra file extensions beyond the usual model ones)
PACK_MODEL_FOLDERS = {
    "latentsync": ("latentsync", (".model",)),  # .model: SyncNet's syncnet_v2.model
    "face_detection": ("face_detection", (".dat", ".onnx")),  # dlib predictors, ONNX detectors
}

# Folders (os.pathsep-separated) from which HVLoadAudio's `path` may read besides the input folder.
# Only the server operator sets it; a widget value alone never reaches outside the input folder.
AUDIO_DIRS_ENV = "HUMANVIDEO_AUDIO_DIRS"

_DRIVE = re.compile(r"^[A-Za-z]:")


def register_model_folders() -> None:
    for key, (folder, extra_extensions) in PACK_MODEL_FOLDERS.items():
        default = os.path.join(folder_paths.models_dir, folder)
        existing = folder_paths.folder_names_and_paths.get(key)
        # A user's extra_model_paths.yaml may have created the key already (with no extension filter):
        # keep its paths, put the default first and restrict to model files.
        paths = [default] + [p for p in (existing[0] if existing else []) if p != default]
        folder_paths.folder_names_and_paths[key] = (
            paths,
            set(folder_paths.supported_pt_extensions) | set(extra_extensions),
        )


def is_within(folder: str, target: str) -> bool:
    """True if ``target`` resolves (symlinks followed) to ``folder`` or a path inside it.

    The rule of ComfyUI's ``folder_paths.is_within_directory`` (comfyanonymous/ComfyUI folder_paths.py,
    0.33): realpath on both sides, then a common-path test, so a symlink inside the folder that points
    elsewhere does not count as inside.
    """
    try:
        folder = os.path.realpath(folder)
        return os.path.commonpath((folder, os.path.realpath(target))) == folder
    except ValueError:  # an embedded NUL, or different drives on Windows
        return False


def model_folders(key: str) -> list[str]:
    """The configured folders of a model key (empty when ComfyUI has no such key)."""
    try:
        return folder_paths.get_folder_paths(key)
    except KeyError:
        return []


def _check_name(name: object, input_name: str, where: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{input_name}: no file chosen from {where}")
    parts = re.split(r"[\\/]", name)
    if "\0" in name or os.path.isabs(name) or name.startswith(("/", "\\", "~")) or _DRIVE.match(name) or ".." in parts:
        raise ValueError(
            f"{input_name}: {name!r} is not a name inside {where}; choose a file from the list "
            "(names are relative to that folder and stay inside it)"
        )
    return name


def resolve_in(folders: list[str], name: object, input_name: str, where: str, kind: str = "file") -> str:
    """Full path of ``name`` inside the first of ``folders`` that holds it, confined to that folder.

    ``kind`` is "file", "folder" or "any". A path that leaves the folder (through a symlink) is treated
    as absent, so the error is the same whether or not something exists outside.
    """
    name = _check_name(name, input_name, where)
    exists = {"file": os.path.isfile, "folder": os.path.isdir, "any": os.path.exists}[kind]
    for base in folders:
        candidate = os.path.normpath(os.path.join(base, name))
        if is_within(base, candidate) and exists(candidate):
            return candidate
    noun = {"file": "a file", "folder": "a folder", "any": "a file or folder"}[kind]
    raise ValueError(f"{input_name}: {name!r} is not {noun} in {where}")


def resolve_model_path(key: str, name: object, input_name: str = "model", kind: str = "any") -> str:
    """Full path of a file or sub-folder chosen from a model folder (folders too, unlike core's resolver)."""
    return resolve_in(model_folders(key), name, input_name, f"models/{key}", kind)


def list_files(key: str) -> list[str]:
    """Core's file list of a model key, without entries whose symlinks lead out of their folder."""
    try:
        names = folder_paths.get_filename_list(key)
    except KeyError:
        return []
    folders = model_folders(key)
    return [n for n in names if any(is_within(b, os.path.join(b, n)) for b in folders)]


def walk(key: str) -> Iterator[tuple[str, str, list[str]]]:
    """(folder, directory, file names) for every directory inside the folders of ``key``, sorted,
    symlinked directories followed while they stay inside the folder."""
    for base in model_folders(key):
        if not os.path.isdir(base):
            continue
        for root, dirs, files in os.walk(base, followlinks=True):
            dirs[:] = sorted(d for d in dirs if is_within(base, os.path.join(root, d)))
            yield base, root, sorted(f for f in files if is_within(base, os.path.join(root, f)))


def folders_holding(key: str, marker: str, include_top: bool = False) -> list[str]:
    """Sub-folders (relative, '/'-separated) of the folders of ``key`` that contain a file ``marker``
    ("." for a folder of the key itself when ``include_top``)."""
    found = set()
    for base, root, files in walk(key):
        if marker in files and (include_top or os.path.normpath(root) != os.path.normpath(base)):
            found.add(os.path.relpath(root, base).replace(os.sep, "/"))
    return sorted(found)


def input_media_files(extensions: tuple[str, ...]) -> list[str]:
    """Files with one of ``extensions`` at the top of ComfyUI's input folder."""
    input_dir = folder_paths.get_input_directory()
    if not os.path.isdir(input_dir):
        return []
    names = [f for f in os.listdir(input_dir) if os.path.isfile(os.path.join(input_dir, f))]
    return sorted(
        f for f in names if f.lower().endswith(extensions) and is_within(input_dir, os.path.join(input_dir, f))
    )


def operator_audio_dirs() -> list[str]:
    """Folders the server operator allows HVLoadAudio's `path` to read from (besides input/)."""
    value = os.environ.get(AUDIO_DIRS_ENV, "")
    return [os.path.abspath(os.path.expanduser(p)) for p in value.split(os.pathsep) if p.strip()]


def resolve_input_file(name: object, input_name: str) -> str:
    """A file in ComfyUI's input folder, by a name relative to it (an upload's "[input]" tag is accepted)."""
    if isinstance(name, str) and name.endswith(" [input]"):
        name = name[: -len(" [input]")]
    return resolve_in([folder_paths.get_input_directory()], name, input_name, "the input folder", "file")


def resolve_operator_path(path: str, input_name: str) -> str:
    """A file named by a free-text path: relative names from the input folder; absolute (or ``~``) ones
    only inside a folder the operator listed in HUMANVIDEO_AUDIO_DIRS."""
    path = path.strip()
    expanded = os.path.expanduser(path)
    if not (os.path.isabs(expanded) or _DRIVE.match(expanded)):
        return resolve_input_file(path, input_name)
    allowed = operator_audio_dirs()
    if not allowed:
        raise ValueError(
            f"{input_name}: files outside the input folder are not allowed; give a name relative to the input "
            f"folder (the server operator can allow more folders with {AUDIO_DIRS_ENV})"
        )
    candidate = os.path.normpath(expanded)
    if "\0" not in path and any(is_within(d, candidate) for d in allowed) and os.path.isfile(candidate):
        return candidate
    raise ValueError(
        f"{input_name}: {path!r} is not a file in the input folder or in a folder allowed by {AUDIO_DIRS_ENV}"
    )


def face_model_choices() -> list[str]:
    """68-point dlib predictors in models/face_detection, then the one of face_recognition_models."""
    names = [n for n in list_files("face_detection") if n.endswith(".dat") and "68" in os.path.basename(n)]
    return [n.replace(os.sep, "/") for n in names] + face_detect.packaged_model_names()


def resolve_face_model(name: object, input_name: str) -> str:
    """A choice of :func:`face_model_choices` as a path (packaged names map into that package)."""
    if isinstance(name, str) and name in face_detect.packaged_model_names():
        return face_detect.model_file(name)
    return resolve_model_path("face_detection", name, input_name, "file")


def cnn_detector_file() -> str | None:
    """dlib's MMOD CNN detector in models/face_detection (None: the detector falls back to the package)."""
    try:
        return resolve_model_path("face_detection", face_detect.CNN_DETECTOR, "detector", "file")
    except ValueError:
        return None


def _known_roots() -> list[tuple[str, str]]:
    """(absolute folder, short label) for every folder ComfyUI is configured with, longest first."""
    base = os.path.realpath(folder_paths.base_path)
    roots: dict[str, str] = {}

    def label(path: str, fallback: str) -> str:
        real = os.path.realpath(path)
        if real == base or real.startswith(base + os.sep):
            return os.path.relpath(real, base).replace(os.sep, "/") if real != base else "ComfyUI"
        return fallback

    for key, (folders, _) in list(folder_paths.folder_names_and_paths.items()):
        for i, folder in enumerate(folders):
            tag = f"models/{key}" if i == 0 else f"models/{key}[{i}]"
            for p in {folder, os.path.realpath(folder)}:
                roots[p] = label(folder, tag)
    for name, getter in (
        ("input", folder_paths.get_input_directory),
        ("output", folder_paths.get_output_directory),
        ("temp", folder_paths.get_temp_directory),
    ):
        for p in {getter(), os.path.realpath(getter())}:
            roots[p] = label(p, name)
    for p in {folder_paths.base_path, base}:
        roots[p] = "ComfyUI"
    pack = os.path.dirname(os.path.abspath(__file__))
    roots[pack] = "<HumanVideo pack>"
    home = os.path.expanduser("~")
    if home not in ("/", "~"):
        roots.setdefault(home, "~")
    return sorted(((p, lbl) for p, lbl in roots.items() if len(p) > 1), key=lambda r: -len(r[0]))


def redact(text: str) -> str:
    """``text`` with every configured absolute folder replaced by a short label (models/vae, input, ...)."""
    for root, label in _known_roots():
        if root in text:
            text = text.replace(root, label)
    return text
