"""Model folders the pack adds to ComfyUI's `folder_paths`.

Core keys (diffusion_models, vae, text_encoders, audio_encoders, loras) are used as they are; only
files core has no place for get a key of their own.
"""

import os

import folder_paths

# key -> (folder name under ComfyUI's models directory, extra file extensions beyond the usual model ones)
PACK_MODEL_FOLDERS = {
    "latentsync": ("latentsync", (".model",)),  # .model: SyncNet's syncnet_v2.model
    "face_detection": ("face_detection", (".dat", ".onnx")),  # dlib predictors, ONNX detectors
}


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


def list_files(key: str) -> list[str]:
    return folder_paths.get_filename_list(key)


def resolve_model_path(key: str, name: str) -> str:
    """Full path of a file or sub-folder chosen from a model folder (folders too, unlike core's resolver)."""
    if not name:
        raise ValueError(f"no file chosen from models/{key}")
    for base in folder_paths.get_folder_paths(key):
        candidate = os.path.join(base, name)
        if os.path.exists(candidate):
            return candidate
    raise ValueError(f"{name!r} not found in models/{key} ({', '.join(folder_paths.get_folder_paths(key))})")
