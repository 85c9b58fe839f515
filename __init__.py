"""ComfyUI-HumanVideo: HuMo, LatentSync and HunyuanVideo-I2V as ComfyUI nodes.

ComfyUI imports this folder as a package by its path; everything below uses relative imports so the
pack never shadows ComfyUI's own top-level modules (`nodes`, `comfy`, `folder_paths`).
"""

from comfy_api.latest import ComfyExtension, io

from . import paths
from .nodes import all_nodes
from .nodes.removed_outputs import register_prompt_handler
from .samplers import flow_unipc

paths.register_model_folders()
# The official HuMo / Wan solver as a core sampler name ("flow_unipc" in KSampler, KSamplerSelect, ...).
flow_unipc.register()
# Saved prompts that still link an output we removed get a clear message instead of an index error.
register_prompt_handler()

# Frontend extensions (served under /extensions/<pack folder>/); see web/js/.
WEB_DIRECTORY = "./web"


class HumanVideoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> HumanVideoExtension:
    return HumanVideoExtension()
