"""Long-form HuMo on tiny random-weight models: chunk plans cover round(duration x 25) frames exactly (10 s,
61 s, 300 s), each chunk's audio windows are the whole audio's rows, latent continuation ends every chunk on the
previous chunk's overlap latents, and a run resumed after a Cancel writes the same mp4 as an uninterrupted one."""

import comfy.model_management
import pytest
import torch
from humanvideo.media.video_io import Mp4Writer
from humanvideo.models import audio_features as af
from humanvideo.samplers import guidance as gd
from humanvideo.samplers import humo_conditioning as hc
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


def _run(model, vae, total, settings, sink=None, cache_root=None, on_progress=None, image=True, speakers=1):
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
    assert hl._digest(value) == "416f4d2ec85217bd01fbf21e9f287f757a90b76654bca9df610f9179024eb72f"
    with pytest.raises(hl.UnkeyableInput):
        hl._digest([print])
