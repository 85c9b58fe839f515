"""The pack registers through the V3 entry point with consistent ids, categories and metadata files."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import humanvideo
import tomllib

PACK_ROOT = Path(__file__).resolve().parents[2]


def run_async(coroutine_function):
    # In a thread of its own: another test's library (Playwright) may own this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coroutine_function())).result()


def registered_nodes():
    extension = run_async(humanvideo.comfy_entrypoint)
    return run_async(extension.get_node_list)


def test_entrypoint_lists_prefixed_nodes_under_one_category():
    nodes = registered_nodes()
    assert nodes, "the pack registers no nodes"
    for node in nodes:
        schema = node.GET_SCHEMA()
        assert schema.node_id.startswith("HV"), schema.node_id
        assert schema.category.startswith("HumanVideo/"), (schema.node_id, schema.category)
        assert schema.description, f"{schema.node_id} has no description"
        for widget in schema.inputs:
            assert widget.tooltip, f"{schema.node_id}.{widget.id} has no tooltip"


def test_node_list_json_equals_a_fresh_generation():
    """The whole file (ids and descriptions) equals what scripts/gen_node_list.py writes now."""
    import gen_node_list  # scripts/ is on sys.path (tests/conftest.py)

    listed = json.loads((PACK_ROOT / "node_list.json").read_text())
    assert listed == gen_node_list.node_descriptions(humanvideo), "run scripts/gen_node_list.py to refresh it"
    assert set(listed) == {n.GET_SCHEMA().node_id for n in registered_nodes()}


def test_no_v1_mappings_that_would_hide_the_v3_entrypoint():
    # ComfyUI stops at NODE_CLASS_MAPPINGS and never calls comfy_entrypoint when both exist.
    assert not hasattr(humanvideo, "NODE_CLASS_MAPPINGS")


def test_requirements_match_pyproject_dependencies():
    pyproject = tomllib.loads((PACK_ROOT / "pyproject.toml").read_text())
    requirements = [
        line.strip()
        for line in (PACK_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(pyproject["project"]["dependencies"]) == sorted(requirements)


def test_v1_node_info_is_serialisable_for_object_info():
    for node in registered_nodes():
        info = node.GET_NODE_INFO_V1()
        assert json.loads(json.dumps(info))["name"] == node.GET_SCHEMA().node_id


def test_web_extension_is_served_from_the_pack():
    assert humanvideo.WEB_DIRECTORY == "./web"
    assert (PACK_ROOT / "web" / "js" / "humanvideo_audio.js").is_file()


def test_renamed_loaders_keep_their_old_ids_as_deprecated_twins():
    """Saved workflows with the ids the Hunyuan loaders shipped with keep loading ."""
    schemas = {n.GET_SCHEMA().node_id: n.GET_SCHEMA() for n in registered_nodes()}
    renamed = {
        "HVHunyuanDiTLoader": "HVLoadHunyuanDiT",
        "HVHunyuanVAELoader": "HVLoadHunyuanVAE",
        "HVHunyuanTextEncoderLoader": "HVLoadHunyuanTextEncoders",
    }
    for old, new in renamed.items():
        assert schemas[old].is_deprecated and not schemas[new].is_deprecated
        assert [i.id for i in schemas[old].inputs] == [i.id for i in schemas[new].inputs]
        assert [o.display_name for o in schemas[old].outputs] == [o.display_name for o in schemas[new].outputs]
