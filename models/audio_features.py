"""Whisper audio features for any length of audio, and their per-frame windows for HuMo and LatentSync.

`extract_audio_features` runs the encoder over 30 s windows and keeps every encoder state at 50 Hz
for the whole clip (`AudioFeatures`, the `HV_AUDIO_FEATURES` value). Pure functions then cut it the
way each official pipeline does:

- HuMo (`Phantom-video/HuMo: humo/utils/audio_processor_whisper.py`): the 33 Hugging Face hidden
  states of whisper-large-v3, 5 groups (means of states 0-7, 8-15, 16-23, 24-31, state 32 alone),
  linear 50 -> 25 Hz (align_corners=True), then 8 rows per latent frame (`get_audio_emb_window`).
- LatentSync (`bytedance/LatentSync: latentsync/whisper/audio2feature.py`): whisper-tiny's input
  embedding and 4 block outputs before `ln_post`; per video frame the 10 positions around
  int(i * 50 / fps) (clamped to the clip) x 5 states = 50 tokens of 384.

The two official pipelines also differ in how a 30 s window is prepared, and both are kept:
- "humo": the waveform is cut into 30 s pieces, each zero-padded to 30 s and turned into its own
  log-mel (its own max - 8 floor), as the Hugging Face feature extractor does;
- "latentsync": one log-mel of the whole clip (one floor), cut into 3000-frame pieces, the last one
  padded with zeros in the log-mel domain, as OpenAI's `transcribe` loop does.

Official code encodes independent, back-to-back 30 s windows ("independent", the default), so
positions next to a window edge lack context on one side and the features jump every 30 s
(LatentSync#132, #151). The "overlap" option encodes windows that overlap by 2 x 5 s and takes each
position from the window in which it lies farthest from an edge, so every position has at least 5 s
of real context on both sides (or touches the start / end of the clip). Audio of at most 30 s is one
window in both modes, hence identical results.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .humo_spec import AUDIO_SHIFT, AUDIO_WINDOW, WHISPER_DIM, WHISPER_MELS, latent_frames, video_frames
from .humo_spec import FPS as HUMO_FPS
from .log_mel import (
    POSITIONS_PER_SECOND,
    SAMPLE_RATE,
    SAMPLES_PER_POSITION,
    WINDOW_MEL_FRAMES,
    WINDOW_POSITIONS,
    WINDOW_SAMPLES,
    log_mel_spectrogram,
)

WINDOW_MODES = ("independent", "overlap")
DEFAULT_WINDOW_MODE = "independent"  # the official back-to-back windows
CONVENTIONS = ("humo", "latentsync")
# Positions of context kept on each side of the part of an overlapping window that is used (5 s).
OVERLAP_CONTEXT = 250

# HuMo: whisper-large-v3, 25 fps video (the release facts are in humo_spec).
HUMO_SAMPLES_PER_FRAME = SAMPLE_RATE // HUMO_FPS  # 640

# LatentSync: whisper-tiny, audio_feat_length [2, 2] -> 10 positions per video frame.
LATENTSYNC_D_MODEL, LATENTSYNC_LAYERS = 384, 4
LATENTSYNC_LEFT, LATENTSYNC_RIGHT = 2, 2


@dataclass
class AudioFeatures:
    """Every Whisper encoder state at 50 Hz for a whole clip (the `HV_AUDIO_FEATURES` value).

    `states[t, 0]` is the input embedding, `states[t, k]` (1..n_layers) the output of block k before
    the final LayerNorm, and `states[t, n_layers + 1]` the final LayerNorm of the last block.
    """

    states: torch.Tensor  # [T50, n_layers + 2, d_model] on the CPU, in the encoder's compute dtype
    n_layers: int
    model_name: str
    num_samples: int  # of the 16 kHz mono audio the states come from
    n_mels: int = 80
    sample_rate: int = SAMPLE_RATE
    window_mode: str = DEFAULT_WINDOW_MODE
    convention: str = "humo"
    silent: bool = False

    feature_rate = POSITIONS_PER_SECOND

    @property
    def d_model(self) -> int:
        return self.states.shape[-1]

    @property
    def num_positions(self) -> int:
        return self.states.shape[0]

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def hidden_states(self) -> torch.Tensor:
        """Hugging Face `output_hidden_states` order: embedding, blocks 1..n-1, LayerNorm(block n)."""
        keep = list(range(self.n_layers)) + [self.n_layers + 1]
        return self.states[:, keep]

    def pre_norm_states(self) -> torch.Tensor:
        """OpenAI `include_embeddings` order: embedding and all block outputs before `ln_post`."""
        return self.states[:, : self.n_layers + 1]

    def __repr__(self) -> str:
        return (
            f"AudioFeatures({self.model_name}, {self.duration:.2f} s, {self.num_positions} x "
            f"{self.states.shape[1]} states x {self.d_model}, {self.window_mode}/{self.convention})"
        )


def _require_features(features: AudioFeatures, user: str, streamed_ok: bool = False) -> None:
    if not isinstance(features, AudioFeatures):
        raise ValueError(f"{user}: expected HV_AUDIO_FEATURES, got {type(features).__name__}")
    if isinstance(features, StreamedAudioFeatures) and not streamed_ok:
        raise ValueError(f"{user} needs the whole clip's features (Whisper Audio Features), not streamed ones")


def _require_encoder(features: AudioFeatures, ok: bool, wanted: str, user: str) -> None:
    if not ok:
        raise ValueError(
            f"{user} needs audio features from {wanted}; these come from {features.model_name} "
            f"({features.n_layers} layers, {features.d_model} channels, {features.n_mels} mel bands). "
            "Load the right Whisper in HVLoadWhisper."
        )


def humo_layer_groups(n_layers: int) -> list[tuple[int, int]]:
    """Hidden-state ranges averaged into HuMo's 5 groups: for large-v3 (32 layers) 0-7, 8-15, 16-23,
    24-31 and 32 alone; smaller test encoders with a multiple of 4 layers are split the same way."""
    if n_layers <= 0 or n_layers % 4:
        raise ValueError(f"HuMo's layer groups need a multiple of 4 encoder layers, got {n_layers}")
    q = n_layers // 4
    return [(0, q), (q, 2 * q), (2 * q, 3 * q), (3 * q, n_layers), (n_layers, n_layers + 1)]


# ---------------------------------------------------------------------------------------------
# Windows and assembly


def plan_windows(
    num_positions: int, mode: str = DEFAULT_WINDOW_MODE, context: int = OVERLAP_CONTEXT
) -> tuple[list[int], torch.Tensor]:
    """Window starts (in 50 Hz positions) and, for each position, which window it is taken from."""
    if mode not in WINDOW_MODES:
        raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
    if num_positions <= 0:
        raise ValueError("no audio positions to encode")
    if mode == "independent":
        starts = list(range(0, num_positions, WINDOW_POSITIONS))
        return starts, torch.arange(num_positions) // WINDOW_POSITIONS
    if num_positions <= WINDOW_POSITIONS:
        return [0], torch.zeros(num_positions, dtype=torch.long)
    stride = WINDOW_POSITIONS - 2 * context
    if stride <= 0:
        raise ValueError(f"overlap context {context} leaves no stride in a {WINDOW_POSITIONS}-position window")
    # the last window ends exactly at the end of the clip, so no window needs padding
    starts = list(range(0, num_positions - WINDOW_POSITIONS, stride)) + [num_positions - WINDOW_POSITIONS]
    best = torch.full((num_positions,), -1, dtype=torch.long)
    owner = torch.zeros(num_positions, dtype=torch.long)
    unbounded = num_positions + WINDOW_POSITIONS
    for k, s in enumerate(starts):
        t = torch.arange(s, s + WINDOW_POSITIONS)
        # an edge at the start or end of the clip is not a seam, so it does not count against a window
        to_start = t - s if s > 0 else torch.full_like(t, unbounded)
        to_end = s + WINDOW_POSITIONS - 1 - t if s + WINDOW_POSITIONS < num_positions else torch.full_like(t, unbounded)
        margin = torch.minimum(to_start, to_end)
        better = margin > best[t]
        best[t[better]] = margin[better]
        owner[t[better]] = k
    return starts, owner


def mel_window(audio: torch.Tensor, whole: torch.Tensor | None, start: int, n_mels: int) -> torch.Tensor:
    """The log-mel input [1, n_mels, 3000] of the 30 s window starting at 50 Hz position `start`.

    `whole` is the whole-clip log-mel for the LatentSync convention (its single floor), None for HuMo's
    (each window its own log-mel of its zero-padded 30 s of samples).
    """
    if whole is None:
        piece = audio[start * SAMPLES_PER_POSITION : start * SAMPLES_PER_POSITION + WINDOW_SAMPLES]
        return log_mel_spectrogram(F.pad(piece, (0, WINDOW_SAMPLES - piece.shape[0])), n_mels)[None]
    piece = whole[:, 2 * start : 2 * start + WINDOW_MEL_FRAMES]
    return F.pad(piece, (0, WINDOW_MEL_FRAMES - piece.shape[1]))[None]


def default_convention(n_layers: int, d_model: int) -> str:
    """LatentSync's whisper-tiny gets LatentSync's window preparation, everything else HuMo's."""
    return "latentsync" if (d_model, n_layers) == (LATENTSYNC_D_MODEL, LATENTSYNC_LAYERS) else "humo"


def check_speech(audio: torch.Tensor) -> torch.Tensor:
    """16 kHz mono samples [T] as float32, refused with a reason when Whisper cannot encode them."""
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D 16 kHz mono samples, got shape {tuple(audio.shape)}")
    audio = audio.to(torch.float32)
    if not torch.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    if audio.shape[0] < SAMPLES_PER_POSITION:
        raise ValueError(
            f"audio is too short for Whisper: {audio.shape[0]} samples at 16 kHz "
            f"({1000 * audio.shape[0] / SAMPLE_RATE:.1f} ms); at least 20 ms are needed"
        )
    return audio


class WindowedWhisper:
    """Whisper over a clip of any length, one 30 s window at a time.

    Holds the plan (`starts`, and `owner`: the window each 50 Hz position is taken from) and what the
    windows are cut from (the samples; for the LatentSync convention also the whole-clip log-mel, about
    32 KB a second); `encode(k)` runs window k. Both the whole-clip `extract_audio_features` and the
    streamed features of a long lip sync encode through it, so they give the same numbers.
    """

    def __init__(self, model, audio: torch.Tensor, window_mode: str = DEFAULT_WINDOW_MODE, convention: str = "auto"):
        self.model = model
        self.audio = check_speech(audio)
        cfg = model.config
        if convention == "auto":
            convention = default_convention(cfg.n_layers, cfg.d_model)
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.window_mode, self.convention = window_mode, convention
        self.num_positions = self.audio.shape[0] // SAMPLES_PER_POSITION
        self.starts, self.owner = plan_windows(self.num_positions, window_mode)
        self.silent = bool(self.audio.abs().max() == 0)
        if self.silent:
            logging.warning("HumanVideo: the audio is silent (all samples are zero); its features describe silence")
        self._whole_mel = log_mel_spectrogram(self.audio, cfg.n_mels) if convention == "latentsync" else None

    def __len__(self) -> int:
        return len(self.starts)

    def encode(self, k: int) -> torch.Tensor:
        """Window k's states [1500, n_states, d] on the CPU, in the model's compute dtype."""
        mel = mel_window(self.audio, self._whole_mel, self.starts[k], self.model.config.n_mels)
        return self.model.encode(mel)[0]

    def features(self, states) -> AudioFeatures:
        """`AudioFeatures` of this clip around `states` (all of them, or a streamed stand-in)."""
        cfg = self.model.config
        kind = AudioFeatures if isinstance(states, torch.Tensor) else StreamedAudioFeatures
        return kind(
            states=states,
            n_layers=cfg.n_layers,
            model_name=cfg.name,
            num_samples=self.audio.shape[0],
            n_mels=cfg.n_mels,
            window_mode=self.window_mode,
            convention=self.convention,
            silent=self.silent,
        )


def extract_audio_features(
    model,
    audio: torch.Tensor,
    *,
    window_mode: str = DEFAULT_WINDOW_MODE,
    convention: str = "auto",
    on_window: Callable[[int, int], None] | None = None,
) -> AudioFeatures:
    """Encode 16 kHz mono audio [T] of any length with a `WhisperModel` into `AudioFeatures`.

    `on_window(done, total)` is called after each 30 s window (progress; it may raise to cancel).
    """
    windows = WindowedWhisper(model, audio, window_mode, convention)
    cfg = model.config
    states = torch.empty(windows.num_positions, cfg.n_states, cfg.d_model, dtype=model.compute_dtype)
    positions = torch.arange(windows.num_positions)
    for k, start in enumerate(windows.starts):
        mine = positions[windows.owner == k]
        states[mine] = windows.encode(k)[mine - start]
        if on_window is not None:
            on_window(k + 1, len(windows))
    return windows.features(states)


class StreamedStates:
    """A clip's Whisper states [T50, n_states, d] that are never all in memory: indexing them with a
    tensor of positions encodes the 30 s windows those positions are taken from, and keeps the last
    `keep_windows` encoded (a lip sync reads positions in order, a few dozen at a time)."""

    def __init__(self, windows: WindowedWhisper, columns: list[int] | None = None, keep_windows: int = 2):
        cfg = windows.model.config
        self.windows = windows
        self.columns = list(range(cfg.n_states)) if columns is None else list(columns)
        self.shape = (windows.num_positions, len(self.columns), cfg.d_model)
        self.dtype = windows.model.compute_dtype
        self.keep_windows = keep_windows
        self._encoded: dict[int, torch.Tensor] = {}  # window -> its chosen columns, oldest first
        self.encodes = 0  # windows encoded so far (a window evicted and needed again counts twice)

    def select(self, columns: list[int]) -> StreamedStates:
        """The same clip's states restricted to some columns (e.g. the pre-LayerNorm ones); it encodes and
        keeps its windows itself, holding only those columns."""
        return StreamedStates(self.windows, [self.columns[c] for c in columns], self.keep_windows)

    def _window(self, k: int) -> torch.Tensor:
        if k in self._encoded:
            return self._encoded[k]
        states = self.windows.encode(k)[:, self.columns]
        self.encodes += 1
        self._encoded[k] = states
        while len(self._encoded) > self.keep_windows:
            del self._encoded[next(iter(self._encoded))]
        return states

    def __getitem__(self, index: torch.Tensor) -> torch.Tensor:
        if not isinstance(index, torch.Tensor) or index.dtype != torch.long:
            raise TypeError("streamed Whisper states are read with a tensor of 50 Hz positions")
        flat = index.reshape(-1)
        if len(flat) and (flat.min() < 0 or flat.max() >= self.shape[0]):
            raise IndexError(f"positions outside the clip's {self.shape[0]} Whisper positions")
        out = torch.empty(len(flat), *self.shape[1:], dtype=self.dtype)
        owners = self.windows.owner[flat]
        for k in owners.unique().tolist():
            here = owners == k
            out[here] = self._window(k)[flat[here] - self.windows.starts[k]]
        return out.reshape(*index.shape, *self.shape[1:])


@dataclass
class StreamedAudioFeatures(AudioFeatures):
    """`AudioFeatures` whose states are `StreamedStates`: encoded window by window as they are read, so a
    lip sync of any length holds two 30 s windows of states instead of the whole clip's (0.46 MB a second
    for whisper-tiny in float32). Made inside a node from a Whisper model and the speech; only the
    LatentSync window gathering (`latentsync_audio_windows(..., lazy=True)`) reads it."""

    states: StreamedStates

    def hidden_states(self) -> StreamedStates:
        return self.states.select(list(range(self.n_layers)) + [self.n_layers + 1])

    def pre_norm_states(self) -> StreamedStates:
        return self.states.select(list(range(self.n_layers + 1)))


def streamed_audio_features(
    model, audio: torch.Tensor, *, window_mode: str = DEFAULT_WINDOW_MODE, convention: str = "auto"
) -> StreamedAudioFeatures:
    """Features of 16 kHz mono audio [T] that encode each 30 s window when it is first read (see
    `StreamedStates`); the numbers equal `extract_audio_features`'s."""
    windows = WindowedWhisper(model, audio, window_mode, convention)
    return windows.features(StreamedStates(windows))


def to_audio_encoder_output(features: AudioFeatures) -> dict:
    """Core's AUDIO_ENCODER_OUTPUT (what `AudioEncoderEncode` makes, which needs torchaudio), so core's
    `WanHuMoImageToVideo` can use these features: Hugging Face-ordered hidden states, [1, T50, d] each."""
    _require_features(features, "audio_encoder_output")
    hidden = features.hidden_states().float()
    return {
        "encoded_audio": hidden[None, :, -1],
        "encoded_audio_all_layers": tuple(hidden[None, :, i] for i in range(hidden.shape[1])),
        "audio_samples": features.num_samples,
    }


# ---------------------------------------------------------------------------------------------
# HuMo


def humo_audio_embedding(features: AudioFeatures) -> torch.Tensor:
    """[T25, 5, 1280]: HuMo's 5 layer groups at 25 Hz, one row per 25 fps video frame of the audio."""
    _require_features(features, "HuMo")
    _require_encoder(
        features,
        features.d_model == WHISPER_DIM and features.n_mels == WHISPER_MELS and features.n_layers % 4 == 0,
        "whisper-large-v3 (1280 channels, 128 mel bands)",
        "HuMo",
    )
    layer_groups = humo_layer_groups(features.n_layers)
    num_frames = features.num_samples // HUMO_SAMPLES_PER_FRAME
    if num_frames == 0:
        raise ValueError(f"audio ({features.duration * 1000:.1f} ms) is shorter than one 25 fps video frame (40 ms)")
    hidden = features.hidden_states()[: 2 * num_frames].float()  # [T50, 33, d]
    groups = torch.stack([hidden[:, a:b].mean(dim=1) for a, b in layer_groups], dim=1)  # [T50, 5, d]
    t50 = groups.shape[0]
    flat = groups.reshape(t50, -1).T[None]  # [1, 5 * d, T50]
    t25 = int(t50 / POSITIONS_PER_SECOND * HUMO_FPS)
    resampled = F.interpolate(flat, size=t25, mode="linear", align_corners=True)
    return resampled[0].T.reshape(t25, len(layer_groups), -1)


def humo_window_indices(frame_num: int, frame0: int = 0) -> torch.Tensor:
    """[T_lat, 8] video-frame indices per latent frame (-1 = zero row), as `get_audio_emb_window`.

    Latent 0 holds video frame ``frame0``: 3 zero rows, then frames frame0-2..frame0+2. Latent i >= 1
    holds frames frame0+4i-3..frame0+4i: rows frame0+4i-5..frame0+4i+2 (2 frames of context on each
    side). Frames before the audio are zero rows too. ``frame0`` is the official ``frame0_idx``
    (Phantom-video/HuMo@17094e9 humo/generate.py:394-418), so a clip cut from a longer video starting at
    video frame ``frame0`` gets exactly the rows of the whole audio that lie under it.
    """
    if frame_num < 1:
        raise ValueError(f"frame count must be at least 1, got {frame_num}")
    if frame0 < 0:
        raise ValueError(f"first video frame must be >= 0, got {frame0}")
    rows = [list(range(frame0 - AUDIO_SHIFT, frame0 + AUDIO_SHIFT + 1))]
    for i in range(1, latent_frames(frame_num)):
        first = frame0 + video_frames(i) - AUDIO_SHIFT
        rows.append(list(range(first, first + AUDIO_WINDOW)))
    index = torch.tensor([[-1] * 3 + rows[0]] + rows[1:])
    return index.clamp(min=-1)


def humo_audio_windows(embedding: torch.Tensor, frame_num: int, n_ref: int = 1, frame0: int = 0) -> torch.Tensor:
    """[T_lat + n_ref, 8, 5, d] audio rows per latent frame of the clip starting at video frame ``frame0``;
    zero rows outside the audio and for references."""
    if embedding.ndim != 3:
        raise ValueError(f"HuMo audio embedding must be [frames, groups, channels], got {tuple(embedding.shape)}")
    if n_ref < 0:
        raise ValueError(f"reference frame count must be >= 0, got {n_ref}")
    index = humo_window_indices(frame_num, frame0)
    padded = torch.cat([embedding, embedding.new_zeros(1, *embedding.shape[1:])])
    valid = (index >= 0) & (index < embedding.shape[0])
    windows = padded[torch.where(valid, index, embedding.shape[0])]
    return torch.cat([windows, windows.new_zeros(n_ref, *windows.shape[1:])])


def humo_audio_conditioning(features: AudioFeatures, frame_num: int, n_ref: int = 1) -> torch.Tensor:
    """HuMo's `[T_lat + n_ref, 8, 5, 1280]` audio input for a `frame_num`-frame 25 fps video."""
    return humo_audio_windows(humo_audio_embedding(features), frame_num, n_ref)


# ---------------------------------------------------------------------------------------------
# LatentSync


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps}")
    return fps


def latentsync_centre(frame: int, fps: float) -> int:
    """50 Hz position of video frame `frame`'s timestamp: int(frame * 50 / fps)."""
    # a tiny epsilon keeps exact products (e.g. 3 * 50 / 30) from rounding down to the previous index
    return int(math.floor(frame * POSITIONS_PER_SECOND / fps + 1e-9))


def latentsync_official_frame_count(num_positions: int, fps: float) -> int:
    """Frames `Audio2Feature.feature2chunks` yields: up to and including the first whose
    position passes the end of the audio (floor(T / 2) + 2 at 25 fps)."""
    fps = _check_fps(fps)
    i = 0
    while latentsync_centre(i, fps) <= num_positions:
        i += 1
    return i + 1


def latentsync_window_indices(num_positions: int, fps: float, n_frames: int) -> torch.Tensor:
    """[n_frames, 10] 50 Hz positions per video frame: centre-4 .. centre+5, clamped to the audio."""
    fps = _check_fps(fps)
    centres = torch.tensor([latentsync_centre(i, fps) for i in range(n_frames)])
    offsets = torch.arange(-2 * LATENTSYNC_LEFT, 2 * (LATENTSYNC_RIGHT + 1))
    return (centres[:, None] + offsets[None, :]).clamp(0, num_positions - 1)


class LatentSyncAudioWindows:
    """The [n_frames, 50, 384] LatentSync windows, gathered on demand (``windows[a:b]``).

    Neighbouring windows overlap (10 positions each, 2 apart at 25 fps), so the whole [n_frames, 50, 384]
    tensor is five times the features themselves; a streamed lip sync takes one chunk's rows at a time.
    """

    def __init__(self, states: torch.Tensor, index: torch.Tensor):
        self.states, self.index = states, index  # [T50, 5, d], [n_frames, 10]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.index.shape[0], self.index.shape[1] * self.states.shape[1], self.states.shape[-1])

    def __len__(self) -> int:
        return self.index.shape[0]

    def __getitem__(self, rows: slice) -> torch.Tensor:
        index = self.index[rows]
        return self.states[index].reshape(index.shape[0], -1, self.states.shape[-1]).float()


def latentsync_audio_windows(
    features: AudioFeatures,
    fps: float,
    n_frames: int | None = None,
    channels: int = LATENTSYNC_D_MODEL,
    lazy: bool = False,
) -> torch.Tensor | LatentSyncAudioWindows:
    """[n_frames, 50, 384] whisper-tiny tokens per video frame at any fps (``lazy``: gathered on demand).

    Tokens are ordered position-major (10 positions x 5 states), as the official reshape. Without
    `n_frames` the official count is used (it runs 1-2 frames past the audio, which is clamped).
    `channels` is the UNet's cross-attention width (384 for LatentSync 1.5 / 1.6).
    """
    _require_features(features, "LatentSync", streamed_ok=True)
    _require_encoder(
        features,
        features.d_model == channels and features.n_layers == LATENTSYNC_LAYERS,
        f"whisper-tiny ({LATENTSYNC_LAYERS} layers, {channels} channels)",
        "LatentSync",
    )
    fps = _check_fps(fps)
    frame_samples = features.sample_rate / fps
    if features.num_samples < frame_samples:
        raise ValueError(
            f"audio ({features.duration * 1000:.1f} ms) is shorter than one video frame at "
            f"{fps:g} fps ({1000 / fps:.1f} ms)"
        )
    states = features.pre_norm_states()  # [T50, 5, d]
    if n_frames is None:
        n_frames = latentsync_official_frame_count(states.shape[0], fps)
    if n_frames < 1:
        raise ValueError(f"frame count must be at least 1, got {n_frames}")
    windows = LatentSyncAudioWindows(states, latentsync_window_indices(states.shape[0], fps, n_frames))
    return windows if lazy else windows[:]
