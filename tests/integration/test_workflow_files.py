"""The shipped workflow files are what the specs build against the live server, and the UI files
convert to exactly their API twins."""

import json
from pathlib import Path

import build_workflows  # scripts/ is on sys.path (tests/conftest.py)
import pytest
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


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_committed_files_equal_a_fresh_build(comfy, workflow):
    ui, api = build_workflows.build(workflow, comfy.client.object_info(refresh=True))
    assert json.loads((WORKFLOW_DIR / f"{workflow.name}.json").read_text()) == json.loads(json.dumps(ui)), (
        "run scripts/build_workflows.py --url <server> to refresh"
    )
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
