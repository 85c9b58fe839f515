"""UI -> API conversion of the batch client, checked against what the real ComfyUI page produces.

`test_batch_data/core_workflow_ui.json` was built in the ComfyUI 0.3.75 page (frontend 1.32.9) and
saved with `app.graph.serialize()`; `core_workflow_frontend_api.json` is the page's own
`app.graphToPrompt()` of the same graph, and `object_info.json` a subset of the server's /object_info.
The graph has a seed widget driven by a PrimitiveInt node, two legacy PrimitiveNodes, a Reroute, a
bypassed node, a muted node, a Note, an upload combo (LoadImage) and control_after_generate values.
"""

import copy
import json
from pathlib import Path

import pytest
from humanvideo.batch import ui_to_api
from humanvideo.batch.ui_to_api import WorkflowError, convert, find_dangling_links, map_widget_values, widget_specs

DATA = Path(__file__).parent / "test_batch_data"


@pytest.fixture(scope="module")
def object_info():
    return json.loads((DATA / "object_info.json").read_text())


@pytest.fixture()
def ui():
    return json.loads((DATA / "core_workflow_ui.json").read_text())


def test_matches_the_frontend_conversion(ui, object_info):
    expected = json.loads((DATA / "core_workflow_frontend_api.json").read_text())
    assert convert(ui, object_info) == expected


def test_object_form_links_convert_the_same(ui, object_info):
    # The frontend's schema 1.0 stores links as objects; the result must not depend on the form.
    as_objects = copy.deepcopy(ui)
    as_objects["links"] = [
        {
            "id": link[0],
            "origin_id": link[1],
            "origin_slot": link[2],
            "target_id": link[3],
            "target_slot": link[4],
            "type": link[5],
        }
        for link in ui["links"]
    ]
    assert convert(as_objects, object_info) == convert(ui, object_info)


def test_widget_specs_count_the_extra_saved_values(object_info):
    ks = dict(widget_specs(object_info["KSampler"]))
    assert ks == {"seed": 2, "steps": 1, "cfg": 1, "sampler_name": 1, "scheduler": 1, "denoise": 1}
    assert widget_specs(object_info["LoadImage"]) == [("image", 2)]  # the upload button's value
    assert widget_specs(object_info["RandomNoise"]) == [("noise_seed", 2)]
    assert widget_specs(object_info["LoadVideo"]) == [("file", 2)]
    assert widget_specs(object_info["VAEDecode"]) == []  # sockets only


def test_seed_without_saved_control_value_still_maps(object_info):
    # Older saves (and API-minded tools) omit "randomize"; values must not shift by one.
    got = map_widget_values("KSampler", object_info["KSampler"], [5, 20, 7.0, "euler", "normal", 1.0])
    assert got == {"seed": 5, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}
    got = map_widget_values("KSampler", object_info["KSampler"], [5, "fixed", 20, 7.0, "euler", "normal", 1.0])
    assert got["steps"] == 20 and got["seed"] == 5


def test_too_few_widget_values_is_a_clear_error(object_info):
    with pytest.raises(WorkflowError, match=r"node 4 \(KSampler\).*missing \['cfg'"):
        map_widget_values("KSampler", object_info["KSampler"], [5, "fixed", 20], "node 4 (KSampler)")


def test_unknown_node_type_is_named(ui, object_info):
    ui["nodes"][0]["type"] = "HVNotInstalled"
    with pytest.raises(WorkflowError, match="not installed on the server.*HVNotInstalled"):
        convert(ui, object_info)


def test_muted_unknown_node_is_ignored(ui, object_info):
    muted = next(n for n in ui["nodes"] if n["mode"] == ui_to_api.MODE_MUTED)
    muted["type"] = "SomePackNode"
    assert "10" not in convert(ui, object_info)


def test_dangling_links_are_found_and_refused(ui, object_info):
    assert find_dangling_links(ui) == []
    ui["links"].append([999, 4242, 0, 5, 3, "LATENT"])
    ks = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    next(i for i in ks["inputs"] if i["name"] == "latent_image")["link"] = 999
    problems = find_dangling_links(ui)
    assert any("4242" in p for p in problems)
    with pytest.raises(WorkflowError, match="dangling"):
        convert(ui, object_info)


def test_subgraphs_are_refused_with_advice(ui, object_info):
    ui["definitions"] = {"subgraphs": [{"id": "x"}]}
    with pytest.raises(WorkflowError, match="Export \\(API\\)"):
        convert(ui, object_info)


def test_detects_formats(ui):
    expected = json.loads((DATA / "core_workflow_frontend_api.json").read_text())
    assert ui_to_api.is_ui_workflow(ui) and not ui_to_api.is_api_prompt(ui)
    assert ui_to_api.is_api_prompt(expected) and not ui_to_api.is_ui_workflow(expected)
