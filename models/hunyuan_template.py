"""The official HunyuanVideo-I2V MLLM prompt template and where its parts land in the hidden states.

Template `dit-llm-encode-video-i2v` (`hyvideo/constants.py`): the LLaVA-Llama-3 input is
``<BOS> system header, <image>, instructions <|eot_id|> \\n\\n user header \\n\\n PROMPT <|eot_id|>
assistant header \\n\\n``, tokenised to at most 359 ids (256 text + 103 template) with right padding.
Inside LLaVA the single `<image>` id becomes 576 projected CLIP patch tokens, so every later position
shifts by 575. The DiT context is then

    image tokens  hidden[5:581:interleave]           (288 for v1, 144 for v2)
    text tokens   hidden[prompt] ++ hidden[final "\\n\\n" ...]   (prompt, "\\n\\n", padding)

i.e. the template instructions and the ``<|eot_id|><|start_header_id|>assistant<|end_header_id|>``
run are cut out, and hidden layer -3 (no final norm) is used.
"""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE_I2V = (
    "<|start_header_id|>system<|end_header_id|>\n\n<image>\nDescribe the video by detailing the following aspects "
    "according to the reference image: "
    "1. The main content and theme of the video."
    "2. The color, shape, size, texture, quantity, text, and spatial relationships of the objects."
    "3. Actions, events, behaviors temporal relationships, physical movement changes of the objects."
    "4. background environment, light, style and atmosphere."
    "5. camera angles, movements, and transitions used in the video:<|eot_id|>\n\n"
    "<|start_header_id|>user<|end_header_id|>\n\n{}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
NEGATIVE_PROMPT_I2V = "deformation, a poor composition and deformed video, bad teeth, bad eyes, bad limbs"

BOS_ID = 128000
IMAGE_TOKEN_ID = 128257
PAD_ID = 128258
DOUBLE_RETURN_ID = 271  # "\n\n"
CROP_START = 103  # index of the first prompt token (BOS included)
IMAGE_INDEX = 5  # index of <image> in the input ids
IMAGE_TOKENS = 576  # CLIP ViT-L/14 at 336 px: 24 x 24 patches
TEXT_LEN = 256
MAX_IDS = TEXT_LEN + CROP_START  # 359
ASSISTANT_RUN = 4  # <|eot_id|><|start_header_id|>assistant<|end_header_id|> before the last "\n\n"
CLIP_MAX_TOKENS = 77


@dataclass(frozen=True)
class I2VTokenLayout:
    """Positions in the input ids (before the image expansion) of one tokenised prompt."""

    ids: tuple[int, ...]  # truncated to MAX_IDS, not padded
    prompt_start: int
    prompt_end: int  # exclusive; the assistant run follows (absent when truncated)
    tail_start: int  # the final "\n\n" (== len(ids) when truncated away)
    truncated: bool

    def hidden(self, i: int) -> int:
        """Hidden-state index of input position i (> IMAGE_INDEX) after the image expansion."""
        return i + IMAGE_TOKENS - 1

    @property
    def text_token_count(self) -> int:
        """Real (unpadded) text tokens kept; the official output pads these to TEXT_LEN - ASSISTANT_RUN."""
        return (self.prompt_end - self.prompt_start) + (len(self.ids) - self.tail_start)

    @property
    def padded_text_len(self) -> int:
        return TEXT_LEN - ASSISTANT_RUN  # 252

    def image_token_count(self, interleave: int) -> int:
        return len(range(0, IMAGE_TOKENS, interleave))

    def context_len(self, interleave: int) -> int:
        """Official context length including text padding: 396 (v2) / 540 (v1)."""
        return self.image_token_count(interleave) + self.padded_text_len


def layout_from_ids(ids: list[int]) -> I2VTokenLayout:
    """Locate prompt and tail in BOS-prefixed template ids, with the official 359-id truncation."""
    if len(ids) < CROP_START + 1 or ids[0] != BOS_ID or ids[IMAGE_INDEX] != IMAGE_TOKEN_ID:
        raise ValueError(
            "prompt: the tokenised template does not have the official layout (BOS at 0, <image> at 5); "
            "is the tokenizer the Llama-3 one?"
        )
    truncated = len(ids) > MAX_IDS
    ids = ids[:MAX_IDS]
    returns = [i for i, t in enumerate(ids) if t == DOUBLE_RETURN_ID]
    if len(returns) == 3:
        # the final "\n\n" was cut away: the official code then keeps text up to the end minus 4 ids
        tail = len(ids)
        truncated = True
    else:
        tail = returns[-1]
    return I2VTokenLayout(tuple(ids), CROP_START, tail - ASSISTANT_RUN, tail, truncated)


def template_ids(tokenizer, prompt: str) -> list[int]:
    """BOS + ids of the filled template.

    `tokenizer` is a `tokenizers.Tokenizer` built from a Llama-3 `tokenizer.json`. (transformers 5's
    `LlamaTokenizerFast` rebuilds Llama-3 as a SentencePiece-style tokenizer and drops "\n\n" after
    special tokens, which would move every template position.)
    """
    text = TEMPLATE_I2V.format(prompt)
    return [BOS_ID] + list(tokenizer.encode(text, add_special_tokens=False).ids)


def clip_ids(tokenizer, prompt: str) -> list[int]:
    """CLIP-L ids as the official `text_encoder_2`: BOS, prompt, EOS, truncated and padded with EOS to 77.

    `tokenizer` is a transformers CLIPTokenizer (no ComfyUI "(word:1.2)" weight parsing, as official).
    """
    ids = list(tokenizer(prompt, add_special_tokens=True, truncation=True, max_length=CLIP_MAX_TOKENS)["input_ids"])
    eos = ids[-1]
    return ids + [eos] * (CLIP_MAX_TOKENS - len(ids))
