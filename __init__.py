"""ComfyUI-HumanVideo: HuMo, LatentSync and HunyuanVideo-I2V as ComfyUI nodes.

ComfyUI imports this folder as a package by its path; everything below uses relative imports so the
pack never shadows ComfyUI's own top-level modules (`nodes`, `comfy`, `folder_paths`).
"""

from comfy_api.latest import ComfyExtension, io

from . import paths
from .nodes import all_nodes

paths.register_model_folders()

# Frontend extensions (served under /extensions/<pack folder>/); see web/js/.
WEB_DIRECTORY = "./web"


class HumanVideoExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return all_nodes()


async def comfy_entrypoint() -> HumanVideoExtension:
    return HumanVideoExtension()
