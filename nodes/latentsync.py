"""The LatentSync lip-sync node: face-tracked video + speech features -> video with new lip motion."""

from __future__ import annotations

from comfy_api.latest import io

from .. import paths
from ..loaders.sd_vae import load_sd_vae
from ..samplers.latentsync_denoise import DenoiseSettings
from ..samplers.latentsync_pipeline import lip_sync, lip_sync_audio_windows
from ..samplers.latentsync_timeline import LONG_VIDEO_MODES, SHORT_VIDEO_MODES, plan_timeline
from .progress import CancellableProgress
from .types import HV_AUDIO_FEATURES, HV_FACE_TRACK, HV_LATENTSYNC_UNET

# Combo label -> `plan_timeline` frame_rate / length mode.
FRAME_RATES = {
    "25 fps (official)": "official",
    "25 fps, nearest frames": "nearest",
    "source fps": "source",
}
LENGTHS = {"official (audio + 2 frames)": "official", "audio duration": "audio"}


def check_release_resolution(unet, crop_resolution: int) -> str:
    """Refuse a 1.5 UNet with 512 crops and a 1.6 UNet with 256 crops when the file name says which it is."""
    model = getattr(unet, "model", unet)
    expected = getattr(model, "release_resolution", None)
    name = getattr(model, "source_path", "the UNet")
    if expected is None:
        return (
            f"note: the UNet file name does not say LatentSync 1.5 or 1.6; using {crop_resolution} px crops "
            "from Face Track (1.5 is trained at 256, 1.6 at 512; keep them in models/latentsync/1.5/ and /1.6/)"
        )
    if expected != crop_resolution:
        release = "1.6" if expected == 512 else "1.5"
        raise ValueError(
            f"{name} is LatentSync {release}, trained on {expected} px faces, but Face Track made {crop_resolution} px "
            f"crops: set Face Track's resolution to {expected} (or load the other release)"
        )
    return ""


def model_inputs() -> list:
    """The UNet and the VAE, first inputs of both lip-sync nodes."""
    return [
        HV_LATENTSYNC_UNET.Input("unet", tooltip="From Load LatentSync UNet."),
        io.Vae.Input("vae", tooltip="The SD VAE LatentSync was trained with (sd-vae-ft-mse)."),
    ]


def lip_sync_inputs() -> list:
    """The lip-sync settings (steps, guidance, seed, DeepCache, length and frame-rate handling, paste),
    shared by the in-memory and the video-file nodes."""
    return [
        io.Int.Input("steps", default=20, min=1, max=200, tooltip="DDIM steps (official 20; 20-50)."),
        io.Float.Input(
            "guidance",
            default=1.5,
            min=1.0,
            max=10.0,
            step=0.05,
            tooltip="Audio guidance (official 1.5). 1.0 skips the unconditional pass (2x faster); "
            "higher syncs harder but may jitter.",
        ),
        io.Int.Input(
            "seed",
            default=1247,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            control_after_generate=True,
            tooltip="Noise seed (official 1247).",
        ),
        io.Int.Input(
            "deepcache_interval",
            default=0,
            min=0,
            max=10,
            tooltip="Reuse the deep UNet features for this many steps (official DeepCache: 3); "
            "0 = off. About 2x faster at a small quality cost.",
        ),
        io.Combo.Input(
            "short_video",
            options=list(SHORT_VIDEO_MODES),
            default="pingpong",
            tooltip="Video shorter than the audio: pingpong (official: forward, then the whole clip "
            "reversed, and so on), loop from the start, or hold the last frame.",
        ),
        io.Combo.Input(
            "long_video",
            options=list(LONG_VIDEO_MODES),
            default="cut",
            tooltip="Video longer than the audio: cut it to the audio (official), or keep the remaining "
            "frames unchanged.",
        ),
        io.Combo.Input(
            "paste",
            options=["face", "mouth"],
            default="face",
            tooltip="face: the whole aligned crop is pasted back (official). mouth: only the regenerated "
            "lower face changes, so eyes, hair and background keep their exact pixels (sharper).",
        ),
        io.Combo.Input(
            "frame_rate",
            options=list(FRAME_RATES),
            default=next(iter(FRAME_RATES)),
            optional=True,  # prompts saved before this input existed keep working, with the official rule
            tooltip="25 fps (official): frames picked as ffmpeg -r 25 picks them (the official pipeline "
            "converts every video that way), result at 25 fps. 25 fps, nearest frames: the source frame "
            "nearest each 25 fps instant. source fps: processed at 25 fps, then every source frame gets the "
            "new mouth of the nearest processed frame; result at the video's own fps.",
        ),
        io.Combo.Input(
            "length",
            options=list(LENGTHS),
            default=next(iter(LENGTHS)),
            optional=True,
            tooltip="official: one 25 fps frame per audio window as the official code counts them "
            "(floor(T/2) + 2 for T Whisper positions, 2 frames past the speech). audio duration: the "
            "speech's length rounded to whole frames.",
        ),
    ]


def timeline_modes(frame_rate: str, length: str) -> tuple[str, str]:
    """The `plan_timeline` frame-rate mode and the audio-window length mode of the two combos."""
    if frame_rate not in FRAME_RATES:
        raise ValueError(f"frame_rate must be one of {list(FRAME_RATES)}, got {frame_rate!r}")
    if length not in LENGTHS:
        raise ValueError(f"length must be one of {list(LENGTHS)}, got {length!r}")
    return FRAME_RATES[frame_rate], LENGTHS[length]


def denoise_settings(steps: int, guidance: float, deepcache_interval: int) -> DenoiseSettings:
    settings = DenoiseSettings(steps=steps, guidance=guidance, deepcache_interval=deepcache_interval)
    settings.validate()
    return settings


class HVLatentSync(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLatentSync",
            display_name="LatentSync Lip Sync",
            category="HumanVideo/lipsync",
            description=(
                "Re-generates the lower face of every tracked frame so the lips follow the speech (LatentSync 1.5 at "
                "256 px, 1.6 at 512 px: the crop size comes from Face Track). As official, the video is converted "
                "to 25 fps (the rate the model was trained at), its length follows the audio, and the result is "
                "25 fps; 'source fps' keeps the video's own frames instead. 16-frame chunks; frames without a face "
                "pass through unchanged."
            ),
            inputs=[
                *model_inputs(),
                io.Image.Input("images", tooltip="The video frames (the same frames Face Track saw)."),
                HV_FACE_TRACK.Input("face_track", tooltip="From Face Track: which face, where, aligned how."),
                HV_AUDIO_FEATURES.Input("audio_features", tooltip="Whisper-tiny features of the new speech."),
                io.Float.Input(
                    "fps",
                    default=25.0,
                    min=0.001,
                    max=240.0,
                    step=0.001,
                    tooltip="The input video's frame rate (from Get Video Components); the frames are converted "
                    "from it to 25 fps.",
                ),
                *lip_sync_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The lip-synced frames."),
                io.Float.Output(
                    display_name="fps",
                    tooltip="The frame rate of the result: 25, or the video's own with frame_rate = source fps. "
                    "Connect it to the save node.",
                ),
                io.String.Output(display_name="report", tooltip="Faces found, length handling, settings."),
            ],
        )

    @classmethod
    def execute(
        cls,
        unet,
        vae,
        images,
        face_track,
        audio_features,
        fps,
        steps,
        guidance,
        seed,
        deepcache_interval,
        short_video,
        long_video,
        paste,
        frame_rate="25 fps (official)",
        length="official (audio + 2 frames)",
    ) -> io.NodeOutput:
        rate_mode, length_mode = timeline_modes(frame_rate, length)
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        tokens = lip_sync_audio_windows(audio_features, length_mode)
        timeline = plan_timeline(int(images.shape[0]), fps, int(tokens.shape[0]), rate_mode, short_video, long_video)
        release_note = check_release_resolution(unet, face_track.resolution)
        settings = denoise_settings(steps, guidance, deepcache_interval)
        progress = CancellableProgress()  # after every chunk's encode, DDIM step and decode

        result = lip_sync(
            images,
            face_track,
            tokens,
            unet,
            vae,
            settings,
            seed,
            timeline,
            paste,
            progress=progress,
        )
        return io.NodeOutput(result.images, result.fps, "\n".join(filter(None, [release_note, result.report])))


class HVLoadSDVAE(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadSDVAE",
            display_name="Load SD VAE (LatentSync)",
            category="HumanVideo/loaders",
            description=(
                "Loads the Stable Diffusion VAE that LatentSync uses (stabilityai/sd-vae-ft-mse, diffusers or LDM "
                "layout) as a core VAE, reading its widths from the weights."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=paths.list_files("vae"),
                    tooltip="sd-vae-ft-mse's diffusion_pytorch_model.safetensors in models/vae.",
                ),
            ],
            outputs=[io.Vae.Output(display_name="vae", tooltip="A core VAE (usable with any VAE node).")],
        )

    @classmethod
    def execute(cls, vae_name) -> io.NodeOutput:
        return io.NodeOutput(load_sd_vae(paths.resolve_model_path("vae", vae_name, "vae_name", "file")))


NODES = [HVLatentSync, HVLoadSDVAE]
