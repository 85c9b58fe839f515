"""Outputs removed from shipped nodes, and what a workflow saved before the removal gets.

Node ids never change, but an output can go (HVHuMoSampler's ``predicted_mask`` did: it came from
mask-predictor heads that no released HuMo checkpoint carries). A saved workflow may still link such an
output. The page's extension (web/js/humanvideo_removed_outputs.js) drops the stale output and its links
when the workflow is opened and says why; for prompts sent to the server directly (API files, scripts)
a prompt handler drops links to a removed output before validation and logs why, so an optional input
simply goes unused and a required one is reported missing on its node, instead of an index error.
"""

from __future__ import annotations

import logging
import sys

# node id -> {output slot: (output name, what to do instead)}
REMOVED_OUTPUTS: dict[str, dict[int, tuple[str, str]]] = {
    "HVHuMoSampler": {
        1: (
            "predicted_mask",
            "no released HuMo checkpoint carries mask-predictor heads; for a face focus found during sampling "
            "switch on the sampler's focus_by_prediction",
        )
    },
}


def drop_removed_output_links(prompt: dict) -> list[str]:
    """Removes, in place, inputs of an API prompt that link to a removed output; returns one message per link."""
    messages = []
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for name, value in list(inputs.items()):
            if not (isinstance(value, list) and len(value) == 2):
                continue
            source = prompt.get(str(value[0]))
            removed = REMOVED_OUTPUTS.get(source.get("class_type")) if isinstance(source, dict) else None
            if not removed or value[1] not in removed:
                continue
            output, instead = removed[value[1]]
            del inputs[name]
            messages.append(
                f"node {node_id} ({node.get('class_type')}) input '{name}' linked the removed output '{output}' of "
                f"node {value[0]} ({source['class_type']}): link dropped; {instead}"
            )
    return messages


def _on_prompt(json_data: dict) -> dict:
    prompt = json_data.get("prompt") if isinstance(json_data, dict) else None
    if isinstance(prompt, dict):
        for message in drop_removed_output_links(prompt):
            logging.warning("HumanVideo: %s", message)
    return json_data


def register_prompt_handler() -> bool:
    """Installs the handler on the running ComfyUI server (none when the pack is loaded outside one)."""
    server = sys.modules.get("server")
    instance = getattr(getattr(server, "PromptServer", None), "instance", None)
    if instance is None or not hasattr(instance, "add_on_prompt_handler"):
        return False
    if _on_prompt not in getattr(instance, "on_prompt_handlers", []):
        instance.add_on_prompt_handler(_on_prompt)
    return True
