"""Long-form HuMo node: minutes of speech -> one continuous mp4, made chunk by chunk with flat memory."""

from __future__ import annotations

import json
import logging
import os

import comfy.model_management
import comfy.utils
import folder_paths
import torch
from comfy.cli_args import args
from comfy_api.latest import InputImpl, io, ui

from ..media.audio_io import validate_audio
from ..media.resample import resample
from ..media.video_io import AAC_SAMPLE_RATES, Mp4Writer
from ..media.watermark import make_label, provenance_metadata
from ..models.audio_features import HUMO_FPS, AudioFeatures
from ..models.humo_spec import TEMPORAL_STRIDE
from ..samplers import humo_conditioning as hc
from ..samplers import humo_long as hl
from .humo import (
    CATEGORY,
    INTEGER_TIMESTEPS_TOOLTIP,
    SIZE_OPTIONS,
    default_plan,
    focus_inputs,
    sampling_inputs,
    speaker_inputs,
)
from .types import HV_AUDIO_FEATURES, HV_GUIDANCE
from .video import PACK_NAME

CACHE_SUBFOLDER = os.path.join("HumanVideo", "long_form_cache")
CONTINUATION_TOOLTIP = (
    "latent (default): the overlap latents are held to the previous chunk's last frames, re-noised to the "
    "current noise level at every step (training-free, both sizes). conditioning (17B only): the same latents "
    "go in through the image channels with mask 1, as Wan I2V takes a first frame; users report it works with "
    "some flashing / contrast shift. latent+conditioning: both."
)

PROMPT_SCHEDULE_TOOLTIP = (
    "Optional: one prompt per time range, one 'start_s: prompt' line each in time order, e.g. '0: a man talks "
    "calmly' then '30: he laughs'. A chunk uses the prompt of the last line whose start_s is at or before the "
    "chunk's first frame (its start in seconds = first frame / 25; chunk i of 97 frames with a 9-frame overlap "
    "starts at 3.52 x i s), and positive before the first line. Each line is encoded once with clip; negative "
    "stays as connected. Empty: positive for every chunk."
)
FOCUS_PER_CHUNK = " Long-form: in every chunk, at that step of the chunk."
TRACK_FACES_TOOLTIP = (
    "Off (default): the focus masks stay as connected. On: after each chunk, faces are detected in its last frames "
    "(dlib, 68-point model from models/face_detection) and the next chunk's focus mask of each speaker becomes a "
    "soft, dilated box over that speaker's face, so the masks follow speakers who move. A speaker keeps the face "
    "nearest their previous box (the first time: the face their mask covers; one speaker without a mask: the "
    "largest). Acts where masks act: with focus_strength above 0 or two speakers."
)


def encode_schedule(clip, text: str) -> list[tuple[float, list]] | None:
    """prompt_schedule's lines -> [(start_s, CONDITIONING)], each distinct prompt encoded once, as CLIP Text Encode."""
    entries = hl.parse_prompt_schedule(text or "")
    if not entries:
        return None
    if clip is None:
        raise ValueError("clip: prompt_schedule has lines to encode; connect the text encoder (umT5) to clip")
    encoded: dict[str, list] = {}
    for _, prompt in entries:
        if prompt not in encoded:
            encoded[prompt] = clip.encode_from_tokens_scheduled(clip.tokenize(prompt))
    return [(start, encoded[prompt]) for start, prompt in entries]


def _features(value, name: str):
    if value is None:
        return None
    if not isinstance(value, AudioFeatures):
        raise ValueError(f"{name}: expected HV_AUDIO_FEATURES from Whisper Audio Features")
    rows = hc.frame_features(value)
    if rows is None:
        raise ValueError(f"{name}: the audio is silent or shorter than one frame; long-form needs speech")
    return rows


class HVHuMoLongForm(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHuMoLongForm",
            display_name="HuMo Long-Form Video",
            category=CATEGORY,
            description=(
                "Any length of speech -> one continuous HuMo video as long as the audio (round(seconds x 25) "
                "frames), with the sound. Made in chunks of the trained 97 frames that overlap by a few latent "
                "frames; each chunk continues from the previous one, gets the exact slice of the whole audio's "
                "Whisper windows and the same reference image(s); the seams are cross-faded. Frames are written "
                "to the mp4 chunk by chunk (memory does not grow with length), and finished chunks are cached "
                "on disk, so queueing the same prompt again after a crash or Cancel resumes at the next chunk."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A HuMo model (17B or 1.7B)."),
                io.Vae.Input("vae", tooltip="Wan 2.1 VAE: references, zero-VAE latents, decoding and the overlaps."),
                io.Conditioning.Input("positive", tooltip="Text conditioning of the prompt (umT5)."),
                io.Conditioning.Input("negative", tooltip="The null text: the official Wan negative prompt encoded."),
                io.Audio.Input("audio", tooltip="The speech: the sound track of the mp4."),
                HV_AUDIO_FEATURES.Input(
                    "audio_features",
                    tooltip="Whisper-large-v3 features of the same speech (whole clip); the video is as long.",
                ),
                io.Combo.Input(
                    "size",
                    options=SIZE_OPTIONS,
                    default="480x832",
                    tooltip="Height x width preset (trained: 480x832, 720x1280); 'custom' uses width/height.",
                ),
                io.Int.Input("width", default=832, min=16, max=4096, step=16, tooltip="Width when size is custom."),
                io.Int.Input("height", default=480, min=16, max=4096, step=16, tooltip="Height when size is custom."),
                *sampling_inputs(
                    "Noise seed; chunk i uses seed + 2i (chunk 0 equals a single clip with this seed).",
                    "Sampling steps per chunk (official 50).",
                ),
                io.Int.Input(
                    "chunk_frames",
                    default=hl.DEFAULT_CHUNK_FRAMES,
                    min=5,
                    max=401,
                    step=TEMPORAL_STRIDE,
                    tooltip="Frames per chunk, 4n+1. 97 is the length HuMo was trained on; longer chunks drift.",
                ),
                io.Int.Input(
                    "overlap_latent_frames",
                    default=hl.DEFAULT_OVERLAP_LATENTS,
                    min=1,
                    max=24,
                    tooltip="Latent frames each chunk shares with the previous one (k latents = 4k - 3 video "
                    "frames: 3 -> 9). More: smoother motion across seams, fewer new frames per chunk.",
                ),
                io.Combo.Input(
                    "continuation",
                    options=list(hl.CONTINUATIONS),
                    default=hl.DEFAULT_CONTINUATION,
                    tooltip=CONTINUATION_TOOLTIP,
                ),
                io.Boolean.Input(
                    "colour_anchor",
                    default=False,
                    tooltip="Off: frames as sampled. On: each chunk's per-channel colour mean and spread are "
                    "matched to the first chunk's, against slow colour / brightness drift over minutes.",
                ),
                io.Boolean.Input("official_integer_timesteps", default=True, tooltip=INTEGER_TIMESTEPS_TOOLTIP),
                io.String.Input(
                    "filename_prefix",
                    default="HumanVideo/humo_long",
                    tooltip="Output file prefix; may contain sub-folders.",
                ),
                io.Int.Input("quality_crf", default=19, min=0, max=51, tooltip="x264 CRF: lower is better quality."),
                io.Boolean.Input(
                    "ai_label",
                    default=True,
                    tooltip="Draw a visible 'AI-generated' label. The file is tagged as AI-generated either way.",
                ),
                io.Boolean.Input(
                    "resume",
                    default=True,
                    tooltip="Cache finished chunks in the output folder (HumanVideo/long_form_cache), keyed by "
                    "every input, and reuse them: a rerun after a crash or Cancel continues at the next chunk. "
                    "The cache of a finished video is removed.",
                ),
                io.Boolean.Input(
                    "output_frames",
                    default=False,
                    tooltip="Also return every frame as IMAGE (RAM then grows with the length); off: the last "
                    "frame only.",
                ),
                io.Image.Input(
                    "reference_images",
                    optional=True,
                    tooltip="0..N reference images (a batch); they condition every chunk (TIA). None: TA.",
                ),
                *speaker_inputs("one mask per frame of the whole video"),
                HV_GUIDANCE.Input(
                    "guidance",
                    optional=True,
                    tooltip="Guidance schedule (e.g. time-adaptive); default: the official recipe of the model's size.",
                ),
                *focus_inputs(optional=True, where=FOCUS_PER_CHUNK),
                io.Boolean.Input("track_faces", default=False, optional=True, tooltip=TRACK_FACES_TOOLTIP),
                io.Clip.Input(
                    "clip",
                    optional=True,
                    tooltip="The text encoder (umT5-XXL) that encodes prompt_schedule's lines; needed only with a "
                    "schedule.",
                ),
                io.String.Input(
                    "prompt_schedule",
                    default="",
                    multiline=True,
                    optional=True,
                    tooltip=PROMPT_SCHEDULE_TOOLTIP,
                ),
            ],
            outputs=[
                io.Video.Output(display_name="video", tooltip="The written mp4 with the sound, as a core VIDEO."),
                io.Image.Output(display_name="frames", tooltip="Every frame (output_frames on) or the last one."),
                io.String.Output(display_name="info", tooltip="Chunks, overlap, what was resumed."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo, io.Hidden.unique_id],
            is_output_node=True,
        )

    @classmethod
    def execute(
        cls,
        model,
        vae,
        positive,
        negative,
        audio,
        audio_features,
        size,
        width,
        height,
        seed,
        steps,
        shift,
        solver,
        chunk_frames,
        overlap_latent_frames,
        continuation,
        colour_anchor,
        official_integer_timesteps,
        filename_prefix,
        quality_crf,
        ai_label,
        resume,
        output_frames,
        reference_images=None,
        focus_mask=None,
        focus_strength=0.0,
        audio_features_2=None,
        mask_2=None,
        guidance=None,
        focus_by_prediction=False,
        focus_prediction_step=10,
        track_faces=False,
        clip=None,
        prompt_schedule="",
    ) -> io.NodeOutput:
        if size != "custom":
            width, height = hc.PRESET_SIZES[size]
        speech = _features(audio_features, "audio_features")
        speakers, masks = [speech], [focus_mask]
        if audio_features_2 is not None:
            if focus_mask is None or mask_2 is None:
                raise ValueError("mask_2: two speakers need focus_mask (speaker 1) and mask_2 (speaker 2)")
            speakers.append(_features(audio_features_2, "audio_features_2"))
            masks.append(mask_2)
        total = hl.video_frames_for(audio_features.num_samples, audio_features.sample_rate)
        settings = hl.LongFormSettings(
            chunk_frames=chunk_frames,
            overlap_latents=overlap_latent_frames,
            continuation=continuation,
            seed=seed,
            steps=steps,
            shift=shift,
            solver=solver,
            integer_timesteps=official_integer_timesteps,
            colour_anchor=colour_anchor,
            focus_strength=focus_strength,
            focus_prediction_step=focus_prediction_step if focus_by_prediction else None,
            track_faces=track_faces,
        )
        schedule = encode_schedule(clip, prompt_schedule)
        n_chunks = len(hl.plan_chunks(total, chunk_frames, overlap_latent_frames))

        waveform, rate = validate_audio(audio, "audio")
        waveform = waveform[0]
        if rate not in AAC_SAMPLE_RATES:
            waveform, rate = resample(waveform.unsqueeze(0), rate, 48000)[0], 48000

        out_dir, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory(), width, height
        )
        file = f"{name}_{counter:05}_.mp4"
        path = os.path.join(out_dir, file)
        extra = {}
        if not args.disable_metadata:
            if cls.hidden.prompt is not None:
                extra["prompt"] = cls.hidden.prompt
            if cls.hidden.extra_pnginfo is not None:
                extra.update({k: json.dumps(v) for k, v in cls.hidden.extra_pnginfo.items()})
        label = make_label(height, width) if ai_label else None
        kept: list[torch.Tensor] = []
        bar = comfy.utils.ProgressBar(n_chunks * steps)
        node_id = cls.hidden.unique_id

        def on_progress(chunk: int, chunks: int, step: int, total_steps: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            bar.update_absolute(chunk * total_steps + step, chunks * total_steps)
            if step in (1, total_steps):
                text = f"chunk {chunk + 1} of {chunks}, step {step} of {total_steps}"
                logging.info("HumanVideo long-form: %s", text)
                _progress_text(text, node_id)

        cache_root = os.path.join(folder_paths.get_output_directory(), CACHE_SUBFOLDER) if resume else None
        with Mp4Writer(
            path,
            total,
            (height, width),
            HUMO_FPS,
            audio=(waveform, rate),
            crf=quality_crf,
            metadata=provenance_metadata(PACK_NAME, extra),
        ) as writer:

            def sink(frames: torch.Tensor) -> None:
                for frame in frames:
                    writer.write_image(label.apply(frame) if label else frame)
                if output_frames:
                    kept.append(frames.clone())

            result = hl.generate_long_form(
                model,
                vae,
                positive,
                negative,
                guidance or default_plan(model),
                width=width,
                height=height,
                total_frames=total,
                speakers=speakers,
                speaker_masks=masks,
                images=list(reference_images) if reference_images is not None else None,
                settings=settings,
                sink=sink,
                cache_root=cache_root,
                on_progress=on_progress,
                positive_schedule=schedule,
            )
        if cache_root is not None:
            hl.ChunkCache(cache_root, result.cache_key).clear()
        frames = torch.cat(kept) if output_frames else result.last_frame
        return io.NodeOutput(
            InputImpl.VideoFromFile(path),
            frames,
            "\n".join(result.notes),
            ui=ui.PreviewVideo([ui.SavedResult(file, subfolder, io.FolderType.output)]),
        )


def _progress_text(text: str, node_id: str | None) -> None:
    """Shows 'chunk i of n' on the node in the browser (where the host supports progress text)."""
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # no server (library use, tests) or an older host: the log line is enough
        pass


NODES = [HVHuMoLongForm]
