"""Loader node for the LatentSync UNet3D (`latentsync_unet.pt` of LatentSync 1.5 / 1.6)."""

from __future__ import annotations

from comfy_api.latest import io

from .. import paths
from ..loaders.latentsync_unet import DTYPE_OPTIONS, load_latentsync_unet
from .types import HV_LATENTSYNC_UNET


class HVLoadLatentSyncUNet(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HVLoadLatentSyncUNet",
            display_name="Load LatentSync UNet",
            category="HumanVideo/loaders",
            description=(
                "Loads a LatentSync UNet3D (latentsync_unet.pt from ByteDance/LatentSync-1.5 or -1.6, or a "
                "safetensors repack) from models/latentsync. The variant (motion modules or not) is read from "
                "the file, and the load is strict: missing, unexpected or mis-shaped weights are listed as an "
                "error instead of being skipped. 1.5 runs at 256 px, 1.6 at 512 px."
            ),
            inputs=[
                io.Combo.Input(
                    "unet_name",
                    options=paths.list_files("latentsync"),
                    tooltip="UNet checkpoint in models/latentsync (e.g. latentsync_unet.pt).",
                ),
                io.Combo.Input(
                    "dtype",
                    options=DTYPE_OPTIONS,
                    default="auto",
                    tooltip="Weight precision. auto follows ComfyUI (fp16/bf16 on GPUs that support them, else fp32); "
                    "the official release runs fp16 on Ampere+ and fp32 on older GPUs.",
                ),
            ],
            outputs=[
                HV_LATENTSYNC_UNET.Output(
                    display_name="unet",
                    tooltip="The LatentSync UNet in a ComfyUI ModelPatcher "
                    "(offloaded and loaded by ComfyUI's memory manager).",
                ),
            ],
        )

    @classmethod
    def execute(cls, unet_name: str, dtype: str) -> io.NodeOutput:
        if not unet_name:
            raise ValueError("unet_name: no file chosen; put latentsync_unet.pt into models/latentsync")
        path = paths.resolve_model_path("latentsync", unet_name, "unet_name", "file")
        return io.NodeOutput(load_latentsync_unet(path, dtype=dtype))


NODES = [HVLoadLatentSyncUNet]
