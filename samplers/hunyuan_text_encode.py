"""The official HunyuanVideo-I2V text encode: one prompt and one reference image -> the DiT's context.

The encode reproduces the official `dit-llm-encode-video-i2v` crop exactly (see
`models/hunyuan_template.py`); the official padding of the text to 256 tokens is masked out in every
official consumer, and core's token refiner averages over all tokens it is given, so we hand the DiT
only the unmasked tokens: that is what the official masked computation sees. The encoders themselves
come from `loaders/hunyuan_text.py` (or core's DualCLIPLoader and CLIPVisionLoader).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..models import hunyuan_template as tpl


@lru_cache(maxsize=1)
def llama_tokenizer():
    """Llama-3 tokenizer shipped with core (same vocabulary and <image>/<pad> ids as the LLaVA folder)."""
    import comfy.text_encoders.hunyuan_video as hv
    import tokenizers

    path = os.path.join(os.path.dirname(hv.__file__), "llama_tokenizer", "tokenizer.json")
    return tokenizers.Tokenizer.from_file(path)


@lru_cache(maxsize=1)
def clip_tokenizer():
    import comfy.sd1_clip
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(os.path.join(os.path.dirname(comfy.sd1_clip.__file__), "sd1_tokenizer"))


@dataclass
class I2VTextEmbedding:
    context: torch.Tensor  # [1, image + text tokens, LM width]
    pooled: torch.Tensor  # [1, 768] CLIP-L pooled output
    image_tokens: int
    text_tokens: int
    truncated: bool


def semantic_image_tokens(clip_vision, image: torch.Tensor) -> torch.Tensor:
    """[576, LM width] projected CLIP patch tokens of the first image (short-side resize + centre crop)."""
    out = clip_vision.encode_image(image[:1, :, :, :3], crop=True)
    return out["mm_projected"][0].float().cpu()


def encode_i2v(clip, clip_vision, image: torch.Tensor, prompt: str, interleave: int) -> I2VTextEmbedding:
    """The official MLLM + CLIP-L encode of one prompt with one reference image.

    Runs under `torch.inference_mode()` as the server runs nodes: newer core's Llama writes into
    preallocated tensors (`torch.add(..., out=...)`), which fails when autograd is recording. The results
    are cloned outside inference mode so callers may use them anywhere.
    """
    if interleave < 1:
        raise ValueError(f"image_interleave: must be >= 1, got {interleave}")
    with torch.inference_mode():
        emb = _encode_i2v(clip, clip_vision, image, prompt, interleave)
    return I2VTextEmbedding(
        context=emb.context.clone(),
        pooled=emb.pooled.clone(),
        image_tokens=emb.image_tokens,
        text_tokens=emb.text_tokens,
        truncated=emb.truncated,
    )


def _encode_i2v(clip, clip_vision, image: torch.Tensor, prompt: str, interleave: int) -> I2VTextEmbedding:
    embeds = semantic_image_tokens(clip_vision, image)
    layout = tpl.layout_from_ids(tpl.template_ids(llama_tokenizer(), prompt))
    pairs: list = [(t, 1.0) for t in layout.ids]
    pairs[tpl.IMAGE_INDEX] = ({"type": "embedding", "data": embeds, "original_type": "image"}, 1.0)

    model = clip.cond_stage_model
    model.reset_clip_options()
    clip.load_model()
    hidden, _, _ = model.llama.encode_token_weights([pairs])
    hidden = hidden[:1].float()
    n_image = embeds.shape[0]
    if hidden.shape[1] != len(layout.ids) + n_image - 1:
        raise ValueError("clip_vision: its projected tokens do not match this text encoder's width")
    shift = n_image - 1
    image_part = hidden[:, tpl.IMAGE_INDEX : tpl.IMAGE_INDEX + n_image : interleave]
    text_part = torch.cat(
        [
            hidden[:, layout.prompt_start + shift : layout.prompt_end + shift],
            hidden[:, layout.tail_start + shift : len(layout.ids) + shift],
        ],
        dim=1,
    )
    clip_pairs = [(t, 1.0) for t in tpl.clip_ids(clip_tokenizer(), prompt)]
    _, pooled = model.clip_l.encode_token_weights([clip_pairs])[:2]
    return I2VTextEmbedding(
        context=torch.cat([image_part, text_part], dim=1),
        pooled=pooled[:1].float(),
        image_tokens=image_part.shape[1],
        text_tokens=text_part.shape[1],
        truncated=layout.truncated,
    )


def to_conditioning(emb: I2VTextEmbedding) -> list:
    """Core CONDITIONING: context + pooled CLIP-L vector (-> `vector_in`)."""
    return [[emb.context, {"pooled_output": emb.pooled}]]
