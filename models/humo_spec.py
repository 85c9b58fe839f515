"""Release facts of HuMo and of the Wan2.1 it is built on, shared by loaders, conditioning, samplers,
parallel passes and the example workflows.

Plain numbers and strings only (no imports), so the workflow generator can read the module without
ComfyUI. Sources, Phantom-video/HuMo@17094e9: humo/configs/inference/generate.yaml (vae_stride, fps,
sample_neg_prompt) and humo/models/audio/audio_proj.py (the audio projection).
"""

# Wan2.1 VAE: 4x in time, causal (latent frame 0 is video frame 0, latent i >= 1 covers frames 4i-3..4i),
# 8x in space (generate.yaml: vae_stride [4, 8, 8]).
TEMPORAL_STRIDE = 4
SPATIAL_STRIDE = 8

FPS = 25  # video frames per second; the audio rows follow the same 25 Hz clock

# Audio path: per latent frame a window of 8 Whisper rows (2 frames of context before the first frame it
# covers), each row 5 layer groups of whisper-large-v3 (1280 channels, 128 mel bands), projected
# 8 * 5 * 1280 -> 512 -> 16 tokens x 1536 (audio_proj.py AudioProjModel).
AUDIO_WINDOW = 8
AUDIO_SHIFT = 2
AUDIO_GROUPS = 5
WHISPER_DIM = 1280
WHISPER_MELS = 128
AUDIO_HIDDEN = 512
AUDIO_TOKENS = 16
AUDIO_CONTEXT_DIM = 1536

# Official sample_neg_prompt (the Wan2.1 default), used by both HuMo sizes.
NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


def latent_frames(video_frames: int) -> int:
    """Latent frames of a ``video_frames``-frame clip (the causal first frame, then one per 4)."""
    return (video_frames - 1) // TEMPORAL_STRIDE + 1


def video_frames(latent_frames: int) -> int:
    """Video frames covered by ``latent_frames`` latent frames (1 + 4 (T - 1))."""
    return 1 + TEMPORAL_STRIDE * (latent_frames - 1)
