"""Long-form HuMo on tiny random-weight models: chunk plans cover round(duration x 25) frames exactly (10 s,
61 s, 300 s), each chunk's audio windows are the whole audio's rows, latent continuation ends every chunk on the
previous chunk's overlap latents, and a run resumed after a Cancel writes the same mp4 as an uninterrupted one."""

import dataclasses

import comfy.model_management
import numpy as np
import pytest
import torch
from humanvideo.media.face_detect import Face
from humanvideo.media.video_io import Mp4Writer
from humanvideo.models import audio_features as af
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
from humanvideo.samplers import humo_guider as hg
from humanvideo.samplers import humo_long as hl

W = H = 32


def _text(seed):
    return torch.randn(1, 6, 4096, generator=torch.Generator().manual_seed(seed))


def _speech(frames, seed=4):
    return torch.randn(frames, 5, 1280, generator=torch.Generator().manual_seed(seed))


def _image():
    return torch.rand(20, 28, 3, generator=torch.Generator().manual_seed(3))


def _plan(model):
    return (
        gd.humo_17b_plan() if model.model.diffusion_model.patch_embedding.weight.shape[1] == 36 else gd.humo_1_7b_plan()
    )


@pytest.mark.parametrize("seconds,frames", [(10.0, 250), (61.0, 1525), (300.0, 7500), (10.02, 251), (0.5, 13)])
def test_plan_covers_round_duration_times_25(seconds, frames):
    total = hl.video_frames_for(round(seconds * 16000), 16000)
    assert total == frames
    chunks = hl.plan_chunks(total)
    assert chunks[0].start == 0 and chunks[0].overlap == 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start == a.end - 9 and b.overlap == 9  # 3 latent frames = 9 video frames
    for c in chunks:
        assert c.frames <= 97 and (c.frames - 1) % 4 == 0
    assert chunks[-1].end >= total > chunks[-1].end - 4  # the last chunk covers the end, at most 3 frames past it
    # written frames: every chunk's frames minus the overlap it shares with the one before, cut at the end
    assert sum(c.frames - c.overlap for c in chunks) - (chunks[-1].end - total) == total


def test_plan_rejects_bad_settings():
    with pytest.raises(ValueError, match="chunk_frames"):
        hl.plan_chunks(100, 96)
    with pytest.raises(ValueError, match="overlap_latent_frames"):
        hl.plan_chunks(100, 9, 3)
    with pytest.raises(ValueError, match="overlap_latent_frames"):
        hl.plan_chunks(100, 97, 0)


def test_chunk_audio_windows_are_the_whole_audio_rows():
    total = hl.video_frames_for(61 * 16000, 16000)
    emb = torch.randn(total, 5, 3)
    whole = af.humo_audio_windows(emb, total, n_ref=0)  # the windows of one 1525-frame clip
    chunks = hl.plan_chunks(total)
    assert len(chunks) == 18
    for c in chunks:
        win = hl.chunk_windows(emb, c)
        assert win.shape[0] == c.latent_frames
        first = c.start // 4  # chunk starts are multiples of 4: its latent j >= 1 is latent first + j of the whole
        n = min(c.latent_frames, whole.shape[0] - first)
        assert torch.equal(win[1:n], whole[first + 1 : first + n])
        # its latent 0 is video frame `start` alone: 3 zero rows, then the rows of frames start-2 .. start+2
        assert (win[0, :3] == 0).all()
        rows = [emb[f] if 0 <= f < total else torch.zeros(5, 3) for f in range(c.start - 2, c.start + 3)]
        assert torch.equal(win[0, 3:], torch.stack(rows))


def _run(model, vae, total, settings, sink=None, cache_root=None, on_progress=None, image=True, speakers=1, **extra):
    chunks = []
    masks = None
    tracks = [_speech(total + 3, seed=4 + k) for k in range(speakers)]
    if speakers > 1:
        left = torch.zeros(1, H, W)
        left[:, :, : W // 2] = 1
        masks = [left, 1 - left]
    result = hl.generate_long_form(
        model,
        vae,
        [[_text(1), {}]],
        [[_text(2), {}]],
        _plan(model),
        width=W,
        height=H,
        total_frames=total,
        speakers=tracks,
        speaker_masks=masks,
        images=[_image()] if image else None,
        settings=settings,
        sink=sink,
        cache_root=cache_root,
        on_progress=on_progress,
        on_chunk=lambda c, lat: chunks.append((c, lat.clone())),
        **extra,
    )
    return result, chunks


def _assert_held(chunks, vae, k):
    for (a, lat_a), (b, lat_b) in zip(chunks, chunks[1:], strict=False):
        decoded = vae.decode(lat_a).reshape(-1, H, W, 3)[: a.frames]
        held = vae.encode(decoded[-b.overlap :]).float()
        # the new chunk ends exactly on the held latents (up to the float round trip of the latent format) ...
        assert torch.allclose(lat_b[:, :, :k], held, atol=1e-5, rtol=1e-5)
        # ... while its free frames moved far from anything held
        assert (lat_b[:, :, k:] - lat_b[:, :, :1]).abs().max() > 0.1


@pytest.mark.parametrize("size", ["17b", "1_7b"])
def test_latent_continuation_holds_the_overlap_latents(size, model_17b, model_1_7b, vae):
    model = model_17b if size == "17b" else model_1_7b
    settings = hl.LongFormSettings(chunk_frames=13, overlap_latents=2, steps=3)
    frames = []
    result, chunks = _run(model, vae, 21, settings, sink=frames.append)
    assert torch.cat(frames).shape == (21, H, W, 3) and len(chunks) == 2 and result.frames == 21
    _assert_held(chunks, vae, 2)


def test_conditioning_continuation_puts_the_overlap_in_y(model_17b, model_1_7b, vae):
    with pytest.raises(ValueError, match="continuation"):
        _run(model_1_7b, vae, 13, hl.LongFormSettings(continuation="conditioning"))
    spec = hc.ModelSpec.from_model(model_17b.model)
    prefix = torch.randn(1, 16, 2, H // 8, W // 8)
    cond = hc.HuMoCondition(W, H, 13, None, [], [], vae, prefix_latents=prefix)
    y_on, y_null = hc.image_inputs(cond, spec)
    plain, _ = hc.image_inputs(hc.HuMoCondition(W, H, 13, None, [], [], vae), spec)
    for y in (y_on, y_null):
        assert (y[:, :4, :2] == 1).all() and (y[:, :4, 2:4] == 0).all() and (y[:, :4, 4:] == 1).all()
        assert torch.equal(y[:, 4:, :2], spec.process_latent_in(prefix).float())
        assert torch.equal(y[:, 4:, 2:], plain[:, 4:, 2:])


def test_ta_two_speakers_colour_anchor_and_both_continuations(model_17b, vae):
    settings = hl.LongFormSettings(
        chunk_frames=9, overlap_latents=1, steps=2, colour_anchor=True, continuation="latent+conditioning"
    )
    frames = []
    result, chunks = _run(model_17b, vae, 13, settings, sink=frames.append, image=False, speakers=2)
    assert torch.cat(frames).shape[0] == 13 and result.last_frame.shape == (1, H, W, 3)
    _assert_held(chunks, vae, 1)


def _write(path, model, vae, settings, cache_root=None, on_progress=None):
    total = 21
    audio = torch.sin(torch.arange(16000 * total // 25) / 10.0)[None] * 0.1
    with Mp4Writer(str(path), total, (H, W), 25, audio=(audio, 16000), crf=10) as writer:
        return _run(
            model,
            vae,
            total,
            settings,
            sink=lambda fr: [writer.write_image(f) for f in fr],
            cache_root=cache_root,
            on_progress=on_progress,
        )


def test_resume_after_cancel_writes_the_same_file(model_1_7b, vae, tmp_path):
    settings = hl.LongFormSettings(chunk_frames=13, overlap_latents=2, steps=2)
    _write(tmp_path / "straight.mp4", model_1_7b, vae, settings)

    def cancel_in_chunk_2(chunk, chunks, step, steps):
        if chunk == 1 and step == 1:
            raise comfy.model_management.InterruptProcessingException()

    cache = tmp_path / "cache"
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        _write(tmp_path / "resumed.mp4", model_1_7b, vae, settings, str(cache), cancel_in_chunk_2)
    assert not (tmp_path / "resumed.mp4").exists()  # the cancelled file is removed
    result, _ = _write(tmp_path / "resumed.mp4", model_1_7b, vae, settings, str(cache))
    assert result.resumed == [0]
    assert (tmp_path / "resumed.mp4").read_bytes() == (tmp_path / "straight.mp4").read_bytes()
    assert hl.ChunkCache(str(cache), result.cache_key).cached() == [0, 1]


def test_cache_key_does_not_depend_on_the_process_hash_seed():
    # frozensets (guidance passes) iterate in a per-process order; the key must not, or a restart could not resume
    value = [gd.humo_17b_plan(), gd.humo_1_7b_plan(), hl.LongFormSettings(), torch.arange(6).reshape(2, 3).float()]
    assert hl._digest(value) == "c5b86440bfb4a22b1e41931f4fa2197341a03134aa5adbd3e8b9d59aedf4b669"
    with pytest.raises(hl.UnkeyableInput):
        hl._digest([print])


def test_prompt_schedule_parses_start_times_and_names_bad_lines():
    text = "0: a man talks calmly\n\n  30.5 :  he laughs: loudly \n90: he waves"
    assert hl.parse_prompt_schedule(text) == [
        (0.0, "a man talks calmly"),
        (30.5, "he laughs: loudly"),
        (90.0, "he waves"),
    ]
    assert hl.parse_prompt_schedule(" \n") == []
    for bad, why in [
        ("0: calm\nlaughs", "line 2 'laughs'"),
        ("x: calm", "line 1 'x: calm'"),
        ("-1: calm", "line 1"),
        ("5:", "line 1"),
        ("nan: calm", "line 1"),
        ("10: calm\n10: laughs", "line 2 '10: laughs' starts at 10 s"),
    ]:
        with pytest.raises(ValueError, match=f"prompt_schedule: {why}"):
            hl.parse_prompt_schedule(bad)


class _Recording(hg.HuMoGuider):
    """The guider, remembering the positive conditioning each chunk was sampled with."""

    seen: list = []

    def set_conds(self, positive, negative):
        type(self).seen.append(positive)
        return super().set_conds(positive, negative)


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setattr(_Recording, "seen", [])
    monkeypatch.setattr(hg, "HuMoGuider", _Recording)
    return _Recording


def test_each_chunk_gets_the_prompt_of_its_range(model_1_7b, vae, recording, tmp_path):
    settings = hl.LongFormSettings(chunk_frames=9, overlap_latents=1, steps=1)  # chunks start at 0, 0.32, 0.64 s
    early, late = [[_text(7), {}]], [[_text(8), {}]]
    schedule = [(0.3, early), (0.64, late)]  # chunk 0 precedes the first range: the positive input
    result, _ = _run(model_1_7b, vae, 25, settings, image=False, positive_schedule=schedule, cache_root=str(tmp_path))
    assert [c.start for c in result.chunks] == [0, 8, 16]
    used = [positive[0][0] for positive in recording.seen]
    assert [torch.equal(u, t) for u, t in zip(used, [_text(1), _text(7), _text(8)], strict=True)] == [True] * 3
    # the schedule is part of the resume key
    other, _ = _run(
        model_1_7b, vae, 25, settings, image=False, positive_schedule=schedule[:1], cache_root=str(tmp_path)
    )
    assert other.cache_key != result.cache_key


class _FakeDetector:
    """Returns the next list of face boxes on every call (the last one again once they run out)."""

    name = "fake"

    def __init__(self, boxes_per_call):
        self.boxes_per_call, self.calls = boxes_per_call, 0

    def detect(self, frame):
        assert frame.dtype == np.uint8 and frame.shape == (H, W, 3)
        boxes = self.boxes_per_call[min(self.calls, len(self.boxes_per_call) - 1)]
        self.calls += 1
        return [Face(np.array(b, np.float32), np.zeros((68, 2), np.float32), 1.0) for b in boxes]


def test_focus_by_prediction_runs_in_every_chunk(model_1_7b, vae):
    settings = hl.LongFormSettings(chunk_frames=9, overlap_latents=1, steps=2)
    plain, plain_chunks = _run(model_1_7b, vae, 17, settings, image=False)
    focused = dataclasses.replace(settings, focus_prediction_step=0)
    detector = _FakeDetector([[(4, 6, 14, 18)]])
    result, chunks = _run(model_1_7b, vae, 17, focused, image=False, face_detector=detector)
    for i in (1, 2):
        assert any(n.startswith(f"chunk {i}: focus by prediction at step 0") for n in result.notes), result.notes
    assert detector.calls > 0
    for (_, a), (_, b) in zip(plain_chunks, chunks, strict=True):
        assert not torch.allclose(a, b)  # the audio confined to the face changes every chunk
    with pytest.raises(ValueError, match="focus_prediction_step"):
        _run(model_1_7b, vae, 17, dataclasses.replace(settings, focus_prediction_step=2), image=False)


def test_speaker_masks_follow_the_faces_of_the_previous_chunk(model_1_7b, vae, recording):
    settings = hl.LongFormSettings(chunk_frames=9, overlap_latents=1, steps=1, track_faces=True)
    a1, b1 = (2, 4, 10, 14), (20, 4, 28, 14)  # speaker 1 left (its mask's half), speaker 2 right
    a2, b2 = (7, 8, 15, 18), (17, 2, 25, 12)  # both moved; listed right face first: identity by nearest box
    detector = _FakeDetector([[a1, b1], [b2, a2]])
    result, _ = _run(model_1_7b, vae, 25, settings, image=False, speakers=2, face_detector=detector)
    assert len(recording.seen) == 3 and detector.calls == 2
    masks = [positive[0][1][hc.COND_KEY].speaker_masks for positive in recording.seen]
    assert masks[0][0][0, 0, 0] == 1 and masks[0][1][0, 0, -1] == 1  # chunk 0: the masks as given
    for chunk, (a, b) in ((1, (a1, b1)), (2, (a2, b2))):
        assert torch.equal(masks[chunk][0], hl.box_mask(np.array(a, float), W, H))
        assert torch.equal(masks[chunk][1], hl.box_mask(np.array(b, float), W, H))
    assert [[tuple(b) for b in boxes] for boxes in result.face_boxes] == [[a1, b1], [a2, b2]]


def test_node_encodes_each_scheduled_prompt_once_and_needs_clip():
    from humanvideo.nodes import humo_long as node

    class CountingClip:
        def __init__(self):
            self.encoded = []

        def tokenize(self, text):
            return text

        def encode_from_tokens_scheduled(self, tokens):
            self.encoded.append(tokens)
            return [[_text(len(self.encoded)), {}]]

    clip = CountingClip()
    schedule = node.encode_schedule(clip, "0: calm\n20: laughs\n40: calm")
    assert clip.encoded == ["calm", "laughs"]  # the repeated prompt is encoded once
    assert [s for s, _ in schedule] == [0.0, 20.0, 40.0] and schedule[0][1] is schedule[2][1]
    assert node.encode_schedule(None, "  \n") is None  # no schedule: no clip needed
    with pytest.raises(ValueError, match="clip: prompt_schedule"):
        node.encode_schedule(None, "0: calm")
    with pytest.raises(ValueError, match="prompt_schedule: line 1 'calm'"):
        node.encode_schedule(clip, "calm")
