"""The shipped workflow files are what the specs build against the live server, and the UI files
convert to exactly their API twins.

The files are built against ComfyUI 0.3.75. A newer core may append outputs to its own nodes
(``GetVideoComponents`` gained ``bit_depth`` and ``color_space``); links to the earlier outputs stay
valid, so on such a host the check builds with those nodes' outputs as the files list them.
"""

import copy
import json
from pathlib import Path

import build_workflows  # scripts/ is on sys.path (tests/conftest.py)
import pytest
from comfy_harness import PACK_FOLDER_NAME
from humanvideo.batch.ui_to_api import convert
from workflow_specs import WORKFLOWS

PACK_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
WORKFLOW_DIR = PACK_ROOT / "workflows"


def test_every_shipped_workflow_has_a_spec_and_an_api_twin():
    names = {w.name for w in WORKFLOWS}
    assert names, "no workflows are specified"
    assert {p.stem for p in WORKFLOW_DIR.glob("*.json")} == names
    assert {p.stem for p in (WORKFLOW_DIR / "api").glob("*.json")} == names


OUTPUT_FIELDS = ("output", "output_name", "output_is_list", "output_tooltips")


def with_committed_outputs(object_info: dict, committed: dict) -> dict:
    """``object_info`` with each core node's outputs cut back to those the committed file lists, where the
    server only appended outputs after them (none of which the file can link)."""
    info = copy.deepcopy(object_info)
    for node in committed["nodes"]:
        spec = info.get(node["type"])
        if spec is None or PACK_FOLDER_NAME in (spec.get("python_module") or ""):
            continue
        listed = [(o["name"], o["type"]) for o in node["outputs"]]
        served = list(zip(spec.get("output_name") or spec["output"], spec["output"], strict=True))
        if len(served) > len(listed) and served[: len(listed)] == listed:
            for name in OUTPUT_FIELDS:
                if isinstance(spec.get(name), list):
                    spec[name] = spec[name][: len(listed)]
    return info


def test_appended_core_outputs_are_accepted_and_nothing_else():
    committed = {"nodes": [{"type": "GetVideoComponents", "outputs": [{"name": "images", "type": "IMAGE"}]}]}
    served = {
        "GetVideoComponents": {
            "python_module": "comfy_extras.nodes_video",
            "output": ["IMAGE", "INT"],
            "output_name": ["images", "bit_depth"],
            "output_is_list": [False, False],
        }
    }
    assert with_committed_outputs(served, committed)["GetVideoComponents"]["output"] == ["IMAGE"]
    renamed = copy.deepcopy(served)
    renamed["GetVideoComponents"]["output_name"][0] = "frames"
    assert with_committed_outputs(renamed, committed) == renamed
    ours = copy.deepcopy(served)
    ours["GetVideoComponents"]["python_module"] = f"custom_nodes.{PACK_FOLDER_NAME}"
    assert with_committed_outputs(ours, committed) == ours


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_committed_files_equal_a_fresh_build(comfy, workflow):
    committed = json.loads((WORKFLOW_DIR / f"{workflow.name}.json").read_text())
    ui, api = build_workflows.build(workflow, with_committed_outputs(comfy.client.object_info(refresh=True), committed))
    assert committed == json.loads(json.dumps(ui)), "run scripts/build_workflows.py --url <server> to refresh"
    assert json.loads((WORKFLOW_DIR / "api" / f"{workflow.name}.json").read_text()) == json.loads(json.dumps(api))


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_ui_file_converts_to_its_api_twin(comfy, workflow):
    ui = json.loads((WORKFLOW_DIR / f"{workflow.name}.json").read_text())
    api = json.loads((WORKFLOW_DIR / "api" / f"{workflow.name}.json").read_text())
    converted = convert(ui, comfy.client.object_info())
    assert {k: (v["class_type"], v["inputs"]) for k, v in converted.items()} == {
        k: (v["class_type"], v["inputs"]) for k, v in api.items()
    }


def test_template_browser_lists_the_shipped_workflows(comfy):
    import requests

    templates = requests.get(comfy.url + "/workflow_templates", timeout=30).json()
    listed = templates.get("ComfyUI-HumanVideo", [])
    assert sorted(listed) == sorted(w.name for w in WORKFLOWS)
    served = requests.get(f"{comfy.url}/api/workflow_templates/ComfyUI-HumanVideo/{listed[0]}.json", timeout=30)
    assert served.status_code == 200 and served.json()["nodes"]
