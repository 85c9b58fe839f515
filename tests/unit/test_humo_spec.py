"""HuMo's release facts agree with the code that uses them."""

from humanvideo.models import humo_spec
from humanvideo.models.audio_features import humo_layer_groups, humo_window_indices


def test_frame_counts_follow_the_causal_4x_vae():
    assert [humo_spec.latent_frames(f) for f in (1, 4, 5, 97)] == [1, 1, 2, 25]
    assert [humo_spec.video_frames(t) for t in (1, 2, 25)] == [1, 5, 97]


def test_audio_shapes_match_the_layer_split_and_the_windows():
    assert len(humo_layer_groups(32)) == humo_spec.AUDIO_GROUPS
    index = humo_window_indices(97)
    assert tuple(index.shape) == (humo_spec.latent_frames(97), humo_spec.AUDIO_WINDOW)
    # latent 1 covers video frames 1..4, with AUDIO_SHIFT frames of context on each side
    assert index[1].tolist() == list(range(1 - humo_spec.AUDIO_SHIFT, 5 + humo_spec.AUDIO_SHIFT))
