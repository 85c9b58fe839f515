"""HuMo nodes: official-faithful conditioning, multi-condition guider, all-in-one sampler."""

from __future__ import annotations

import comfy.model_management
import torch
from comfy_api.latest import io

from ..parallel import guider as pg
from ..parallel import runtime as parallel_runtime
from ..samplers import guidance as gd
from ..samplers import humo_conditioning as hc
from ..samplers import humo_guider as hg
from .types import HV_AUDIO_FEATURES, HV_GUIDANCE, HV_PARALLEL

SIZE_OPTIONS = list(hc.PRESET_SIZES) + ["custom"]
CATEGORY = "HumanVideo/HuMo"
PARALLEL_TOOLTIP = "Optional: HV Parallel, to sample on several GPUs (sequence / CFG parallel, sharded weights)."


def default_plan(model) -> gd.GuidancePlan:
    spec = hc.ModelSpec.from_model(model.model)
    return gd.humo_17b_plan() if spec.concat_y else gd.humo_1_7b_plan()


def speaker_inputs(per_frame: str) -> list:
    """The focus mask, its strength and the second speaker (HuMo Conditioning, HuMo Long-Form)."""
    return [
        io.Mask.Input(
            "focus_mask",
            optional=True,
            tooltip=f"Where the audio should act (a face): static, or {per_frame}.",
        ),
        io.Float.Input(
            "focus_strength",
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.05,
            tooltip="How strongly the audio cross-attention is confined to the focus mask; 0 = official behaviour.",
        ),
        HV_AUDIO_FEATURES.Input(
            "audio_features_2", optional=True, tooltip="A second speaker's track; needs focus_mask and mask_2."
        ),
        io.Mask.Input("mask_2", optional=True, tooltip="Region of the second speaker."),
    ]


def sampling_inputs(seed_tooltip: str, steps_tooltip: str) -> list:
    """Seed, steps, shift and solver (HuMo Sampler, HuMo Long-Form)."""
    return [
        io.Int.Input(
            "seed",
            default=666666,
            min=0,
            max=0xFFFFFFFFFFFFFFFF,
            control_after_generate=True,
            tooltip=seed_tooltip,
        ),
        io.Int.Input("steps", default=50, min=1, max=1000, tooltip=steps_tooltip),
        io.Float.Input(
            "shift",
            default=5.0,
            min=0.01,
            max=100.0,
            step=0.1,
            tooltip="Flow shift of the sigma schedule (official 5.0).",
        ),
        io.Combo.Input(
            "solver",
            options=list(hg.SOLVERS),
            default=hg.DEFAULT_SOLVER,
            tooltip="flow_unipc: the official FlowUniPC (UniPC bh2, order 2, flow log-SNR). uni_pc: core's "
            "UniPC bh2 (order 3, another lambda: drifts from the official trajectory). euler: flow Euler.",
        ),
    ]


def _attach(conditioning: list, cond: hc.HuMoCondition) -> list:
    return [[emb, {**opts, hc.COND_KEY: cond}] for emb, opts in conditioning]


class HVHuMoConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHuMoConditioning",
            display_name="HuMo Conditioning",
            category=CATEGORY,
            description=(
                "Prepares HuMo text + reference image(s) + audio conditioning exactly as the official code: "
                "aspect-fit Lanczos with white padding, one latent frame per reference at the end, zero-VAE "
                "latents computed with your VAE for any size, 8-row audio windows per latent frame. The mode "
                "(TA, TI, TIA) follows from what is connected. Works for HuMo-17B and HuMo-1.7B."
            ),
            inputs=[
                io.Conditioning.Input("positive", tooltip="Text conditioning of the prompt (umT5, CLIP Text Encode)."),
                io.Conditioning.Input("negative", tooltip="The null text: the official Wan negative prompt encoded."),
                io.Vae.Input("vae", tooltip="Wan 2.1 VAE: encodes the references and the zero video for 17B."),
                io.Combo.Input(
                    "size",
                    options=SIZE_OPTIONS,
                    default="480x832",
                    tooltip="Height x width preset (trained: 480x832, 720x1280); 'custom' uses width/height.",
                ),
                io.Int.Input(
                    "width",
                    default=832,
                    min=16,
                    max=4096,
                    step=16,
                    tooltip="Video width in pixels (multiple of 16), used when size is 'custom'.",
                ),
                io.Int.Input(
                    "height",
                    default=480,
                    min=16,
                    max=4096,
                    step=16,
                    tooltip="Video height in pixels (multiple of 16), used when size is 'custom'.",
                ),
                io.Int.Input(
                    "length",
                    default=97,
                    min=-1,
                    max=4097,
                    tooltip="Frames at 25 fps, 4n+1 (others are rounded down); -1 = the audio's length. Trained on 97.",
                ),
                io.Image.Input(
                    "reference_images",
                    optional=True,
                    tooltip="0..N reference images (a batch): each becomes one extra latent frame.",
                ),
                HV_AUDIO_FEATURES.Input(
                    "audio_features",
                    optional=True,
                    tooltip="Whisper-large-v3 features of the speech. Silent audio = no audio.",
                ),
                *speaker_inputs("one mask per frame"),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive", tooltip="Positive with the HuMo bundle attached."),
                io.Conditioning.Output(display_name="negative", tooltip="Negative with the HuMo bundle attached."),
                io.Latent.Output(display_name="latent", tooltip="Empty video latent [1, 16, T_lat, H/8, W/8]."),
                io.String.Output(display_name="info", tooltip="Mode, size, length and any adjustment made."),
            ],
        )

    @classmethod
    def execute(
        cls,
        positive,
        negative,
        vae,
        size,
        width,
        height,
        length,
        reference_images=None,
        audio_features=None,
        focus_mask=None,
        focus_strength=0.0,
        audio_features_2=None,
        mask_2=None,
    ) -> io.NodeOutput:
        if size != "custom":
            width, height = hc.PRESET_SIZES[size]
        speakers, masks = [], []
        if audio_features is not None:
            speakers.append(audio_features)
            masks.append(focus_mask)
        if audio_features_2 is not None:
            if audio_features is None:
                raise ValueError("audio_features_2: connect audio_features first")
            if focus_mask is None or mask_2 is None:
                raise ValueError("mask_2: two speakers need focus_mask (speaker 1) and mask_2 (speaker 2)")
            speakers.append(audio_features_2)
            masks.append(mask_2)
        images = list(reference_images) if reference_images is not None else []
        cond = hc.build_condition(
            vae,
            width,
            height,
            length,
            images=images,
            speakers=speakers,
            speaker_masks=masks,
            focus_strength=focus_strength,
        )
        latent = torch.zeros(
            1,
            hc.LATENT_CHANNELS,
            cond.latent_frames,
            height // 8,
            width // 8,
            device=comfy.model_management.intermediate_device(),
        )
        return io.NodeOutput(
            _attach(positive, cond), _attach(negative, cond), {"samples": latent}, "\n".join(cond.notes)
        )


INTEGER_TIMESTEPS_TOOLTIP = (
    "On (official): the DiT gets the integer timestep the official loop feeds it (1000 x sigma truncated) and the "
    "17B guidance switches while that integer is > 980, so every step count switches where the official code does "
    "(80 steps: after step 7, not 8). Off: core's float timestep, switch on sigma > 0.98."
)
FOCUS_BY_PREDICTION_TOOLTIP = (
    "Off (official): no focus by prediction. On: after focus_prediction_step the x0 estimate is decoded with the "
    "VAE, each speaker's face is found (dlib, 68-point model from models/face_detection) and a soft, dilated face "
    "mask confines that speaker's audio for the remaining steps, at the conditioning's focus_strength (1 when it "
    "is 0). Speakers take the faces their focus masks cover; one speaker without a mask takes the largest face. "
    "Costs one VAE decode and a face detection on every 4th frame."
)
FOCUS_STEP_TOOLTIP = (
    "Step (0-based) whose x0 estimate is decoded for focus by prediction; the focus holds from the next step on. "
    "Early steps give blurry frames where faces may not be found (then the focus stays as it was)."
)


def _focus_options(focus_by_prediction: bool, focus_prediction_step: int) -> hg.FocusOptions | None:
    if not focus_by_prediction:
        return None
    return hg.FocusOptions(prediction=hg.FocusPrediction(step=focus_prediction_step))


def focus_inputs(optional: bool = False, where: str = "") -> list:
    """Focus by prediction's switch and step (HuMo Guider, HuMo Sampler, HuMo Long-Form: ``where`` says per chunk)."""
    return [
        io.Boolean.Input(
            "focus_by_prediction", default=False, optional=optional, tooltip=FOCUS_BY_PREDICTION_TOOLTIP + where
        ),
        io.Int.Input(
            "focus_prediction_step", default=10, min=1, max=999, optional=optional, tooltip=FOCUS_STEP_TOOLTIP
        ),
    ]


class HVHuMoGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHuMoGuider",
            display_name="HuMo Guider",
            category=CATEGORY,
            description=(
                "A GUIDER for SamplerCustomAdvanced running HuMo's multi-condition guidance (separate text, image "
                "and audio scales, time-adaptive). Identical passes run once, zero-scale passes are skipped and "
                "the rest are batched into one forward when memory allows. Pair it with the flow_unipc sampler "
                "(KSamplerSelect) for the official solver."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A HuMo model (17B or 1.7B), LoRAs and patches welcome."),
                io.Conditioning.Input("positive", tooltip="positive from HuMo Conditioning."),
                io.Conditioning.Input("negative", tooltip="negative from HuMo Conditioning."),
                io.Boolean.Input("official_integer_timesteps", default=True, tooltip=INTEGER_TIMESTEPS_TOOLTIP),
                *focus_inputs(),
                HV_GUIDANCE.Input(
                    "guidance",
                    optional=True,
                    tooltip="Guidance schedule; default: the official recipe of the model's size.",
                ),
                HV_PARALLEL.Input("parallel", optional=True, tooltip=PARALLEL_TOOLTIP),
            ],
            outputs=[io.Guider.Output(display_name="guider", tooltip="For SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        negative,
        official_integer_timesteps=True,
        focus_by_prediction=False,
        focus_prediction_step=10,
        guidance=None,
        parallel=None,
    ) -> io.NodeOutput:
        init_args = (
            guidance or default_plan(model),
            _focus_options(focus_by_prediction, focus_prediction_step),
            official_integer_timesteps,
        )
        if parallel is not None:
            return io.NodeOutput(pg.ParallelGuider(parallel, model, hg.HuMoGuider, init_args, positive, negative))
        guider = hg.HuMoGuider(model, *init_args)
        guider.set_conds(positive, negative)
        return io.NodeOutput(guider)


class HVHuMoSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVHuMoSampler",
            display_name="HuMo Sampler",
            category=CATEGORY,
            description=(
                "Samples a HuMo video with the official settings: 50 steps, shift 5.0, FlowUniPC (the official "
                "solver), integer timesteps, the official guidance of the model's size unless a schedule is "
                "connected. Returns the video frames' latent (reference frames dropped)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="A HuMo model (17B or 1.7B)."),
                io.Conditioning.Input("positive", tooltip="positive from HuMo Conditioning."),
                io.Conditioning.Input("negative", tooltip="negative from HuMo Conditioning."),
                io.Latent.Input("latent", tooltip="latent from HuMo Conditioning."),
                *sampling_inputs("Noise seed (official default 666666).", "Sampling steps (official 50)."),
                io.Boolean.Input("official_integer_timesteps", default=True, tooltip=INTEGER_TIMESTEPS_TOOLTIP),
                *focus_inputs(),
                HV_GUIDANCE.Input(
                    "guidance",
                    optional=True,
                    tooltip="Guidance schedule; default: the official recipe of the model's size.",
                ),
                HV_PARALLEL.Input("parallel", optional=True, tooltip=PARALLEL_TOOLTIP),
            ],
            outputs=[
                io.Latent.Output(display_name="latent", tooltip="Denoised video latent (reference frames dropped)."),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        negative,
        latent,
        seed,
        steps,
        shift,
        solver,
        official_integer_timesteps=True,
        focus_by_prediction=False,
        focus_prediction_step=10,
        guidance=None,
        parallel=None,
    ) -> io.NodeOutput:
        args = (positive, negative, latent, guidance or default_plan(model))
        options = dict(
            seed=seed,
            steps=steps,
            shift=shift,
            solver=solver,
            focus=_focus_options(focus_by_prediction, focus_prediction_step),
            integer_timesteps=official_integer_timesteps,
        )
        if parallel is not None:  # the same sampler on the workers; the latent comes back
            out = parallel_runtime.run(parallel, model, hg.sample_humo, *args, returns=0, **options)
        else:
            out, _ = hg.sample_humo(model, *args, **options)
        return io.NodeOutput(out)


NODES = [HVHuMoConditioning, HVHuMoGuider, HVHuMoSampler]
