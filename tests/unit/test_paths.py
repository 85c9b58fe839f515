"""Confinement of every file name a node reads, node input checks, and install paths kept out of errors."""

import inspect
import math
import os

import folder_paths
import pytest
from comfy_api.latest import io
from humanvideo import paths
from humanvideo.nodes import all_nodes
from humanvideo.nodes.input_checks import check_value


@pytest.fixture
def vae_folder(tmp_path, monkeypatch):
    inside = tmp_path / "models" / "vae"
    outside = tmp_path / "outside"
    inside.mkdir(parents=True)
    outside.mkdir()
    (inside / "good.safetensors").write_bytes(b"x")
    (inside / "sub").mkdir()
    (inside / "sub" / "nested.pt").write_bytes(b"x")
    (outside / "secret.safetensors").write_bytes(b"x")
    os.symlink(outside / "secret.safetensors", inside / "link_out.safetensors")
    os.symlink(outside, inside / "dir_out")
    exts = folder_paths.folder_names_and_paths["vae"][1]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "vae", ([str(inside)], exts))
    folder_paths.filename_list_cache.clear()
    yield inside, outside
    folder_paths.filename_list_cache.clear()


def test_names_inside_the_folder_resolve(vae_folder):
    inside, _ = vae_folder
    assert paths.resolve_model_path("vae", "good.safetensors", "vae_name", "file") == str(inside / "good.safetensors")
    assert paths.resolve_model_path("vae", "sub/nested.pt", "vae_name") == str(inside / "sub" / "nested.pt")
    assert paths.resolve_model_path("vae", "sub", "vae_name", "folder") == str(inside / "sub")


@pytest.mark.parametrize(
    "name",
    ["../outside/secret.safetensors", "sub/../../outside/secret.safetensors", "~/x.pt", "/etc", "C:\\x.pt", "a\0b"],
)
def test_traversal_absolute_and_home_names_are_refused(vae_folder, name):
    with pytest.raises(ValueError, match="vae_name: .* is not a name inside models/vae"):
        paths.resolve_model_path("vae", name, "vae_name")


def test_absolute_path_of_a_real_outside_file_is_refused(vae_folder):
    _, outside = vae_folder
    with pytest.raises(ValueError, match="is not a name inside models/vae") as refused:
        paths.resolve_model_path("vae", str(outside / "secret.safetensors"), "vae_name")
    assert "secret" in str(refused.value)  # the name the user gave, nothing about the file


def test_symlinks_leading_out_read_as_absent_and_are_not_listed(vae_folder):
    missing = pytest.raises(ValueError, match="vae_name: 'nope.safetensors' is not a file in models/vae")
    with missing as absent:
        paths.resolve_model_path("vae", "nope.safetensors", "vae_name", "file")
    with pytest.raises(ValueError) as escaped:
        paths.resolve_model_path("vae", "link_out.safetensors", "vae_name", "file")
    # Same wording as a file that does not exist: the error says nothing about the outside target.
    assert str(escaped.value).replace("link_out", "nope") == str(absent.value)
    with pytest.raises(ValueError, match="is not a file in models/vae"):
        paths.resolve_model_path("vae", "dir_out/secret.safetensors", "vae_name", "file")
    listed = paths.list_files("vae")
    assert "good.safetensors" in listed and "link_out.safetensors" not in listed
    assert not any(n.startswith("dir_out") for n in listed)


def test_input_files_and_operator_folders(tmp_path, monkeypatch):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    (input_dir / "voice.wav").write_bytes(b"x")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "take.wav").write_bytes(b"x")
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(input_dir))
    monkeypatch.delenv(paths.AUDIO_DIRS_ENV, raising=False)
    assert paths.resolve_input_file("voice.wav [input]", "audio") == str(input_dir / "voice.wav")
    assert paths.resolve_operator_path("voice.wav", "path") == str(input_dir / "voice.wav")
    with pytest.raises(
        ValueError, match=f"path: files outside the input folder are not allowed.*{paths.AUDIO_DIRS_ENV}"
    ):
        paths.resolve_operator_path(str(allowed / "take.wav"), "path")
    with pytest.raises(ValueError, match="path: .* is not a name inside the input folder"):
        paths.resolve_operator_path("../allowed/take.wav", "path")
    monkeypatch.setenv(paths.AUDIO_DIRS_ENV, str(allowed))
    assert paths.resolve_operator_path(str(allowed / "take.wav"), "path") == str(allowed / "take.wav")
    with pytest.raises(ValueError, match="is not a file in the input folder or in a folder allowed by"):
        paths.resolve_operator_path(str(tmp_path / "elsewhere.wav"), "path")


def test_redact_replaces_configured_folders():
    vae = folder_paths.get_folder_paths("vae")[0]
    text = paths.redact(f"cannot read {os.path.join(vae, 'x.pt')} from {folder_paths.get_input_directory()}/a.wav")
    assert vae not in text and folder_paths.base_path not in text
    assert "x.pt" in text


def test_widget_checks_name_the_input_and_the_problem():
    combo = io.Combo.Input("mode", options=["a", "b"])
    number = io.Float.Input("shift", default=1.0, min=0.0, max=10.0)
    count = io.Int.Input("steps", default=1, min=1, max=50)
    check_value(combo, "a")
    check_value(number, 2.5)
    check_value(count, 3)
    for widget, value, problem in (
        (combo, "c", "mode: 'c' is not a valid choice"),
        (number, math.nan, "shift: must be a finite number"),
        (number, math.inf, "shift: must be a finite number"),
        (number, -1.0, "shift: -1.0 is below the minimum 0.0"),
        (number, "2", "shift: expected a number"),
        (count, 51, "steps: 51 is above the maximum 50"),
        (count, 2.5, "steps: expected a whole number"),
        (count, True, "steps: expected a number"),
    ):
        with pytest.raises(ValueError, match=problem):
            check_value(widget, value)


def test_every_node_is_guarded_and_media_never_imports_folder_paths():
    for node in all_nodes():
        assert getattr(node, "_hv_checked", False), node
        validate = node.__dict__.get("validate_inputs")
        if validate is not None:  # **kwargs there would switch off core's range checks
            kinds = [p.kind for p in inspect.signature(validate.__func__).parameters.values()]
            assert inspect.Parameter.VAR_KEYWORD not in kinds, node
    media = os.path.join(os.path.dirname(paths.__file__), "media")
    for name in os.listdir(media):
        if name.endswith(".py"):
            with open(os.path.join(media, name)) as f:
                assert "folder_paths" not in f.read(), name


def test_a_shard_index_cannot_name_files_outside_its_folder(tmp_path):
    import json

    from humanvideo.loaders.checkpoint_files import read_shard_index

    index = tmp_path / "model.safetensors.index.json"
    for shard in ("../outside.safetensors", "/etc/passwd", "sub/x.safetensors"):
        index.write_text(json.dumps({"weight_map": {"w": shard}}))
        with pytest.raises(ValueError, match="shard names must be plain file names"):
            read_shard_index(index)


def test_a_truncated_shard_is_named(tmp_path):
    import json

    import torch
    from humanvideo.loaders.checkpoint_files import load_state_dict
    from safetensors.torch import save_file

    shard = tmp_path / "m-00001-of-00001.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(shard))
    shard.write_bytes(shard.read_bytes()[:100])
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": shard.name}}))
    with pytest.raises(ValueError, match=f"shard {shard.name} of {index.name} is not a readable safetensors file"):
        load_state_dict(index)
