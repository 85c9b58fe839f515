"""The pack's own types between nodes, each declared once (core types are used wherever they fit).

A type is a name the frontend matches when links are drawn, so two declarations of one name would still
connect; declaring each here keeps its meaning in one place.
"""

from __future__ import annotations

from comfy_api.latest import io

HV_WHISPER = io.Custom("HV_WHISPER")  # a Whisper encoder (tiny for LatentSync, large-v3 for HuMo)
HV_AUDIO_FEATURES = io.Custom("HV_AUDIO_FEATURES")  # per-video-frame audio embeddings with their fps and length
HV_GUIDANCE = io.Custom("HV_GUIDANCE")  # a per-step multi-condition guidance plan
HV_LATENTSYNC_UNET = io.Custom("HV_LATENTSYNC_UNET")  # the LatentSync UNet3D in a ModelPatcher
HV_FACE_TRACK = io.Custom("HV_FACE_TRACK")  # per-frame faces, landmarks and alignment of a video
HV_SYNCNET = io.Custom("HV_SYNCNET")  # SyncNet for lip-sync scores
HV_PARALLEL = io.Custom("HV_PARALLEL")  # the worker set-up of HV Parallel
