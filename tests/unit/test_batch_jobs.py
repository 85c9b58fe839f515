"""Job lists (CSV / JSONL) and how job values address, convert and check prompt inputs.

The prompt is the real frontend's API conversion of a core-node graph and the schemas a recorded
/object_info subset of ComfyUI 0.3.75 (see test_batch_ui_to_api.py).
"""

import json
from pathlib import Path

import pytest
from humanvideo.batch.jobs import (
    Job,
    JobError,
    coerce,
    parse_csv,
    parse_jsonl,
    plan_job,
    read_jobs,
    resolve_key,
    validate_prompt,
)

DATA = Path(__file__).parent / "test_batch_data"


@pytest.fixture(scope="module")
def object_info():
    return json.loads((DATA / "object_info.json").read_text())


@pytest.fixture()
def prompt():
    return json.loads((DATA / "core_workflow_frontend_api.json").read_text())


def job(**values):
    return Job(id="j", source="jobs.csv:2", values=values)


# -- reading --------------------------------------------------------------------------------------------
def test_csv_rows_ids_and_empty_cells():
    jobs = parse_csv("id,prompt,seed\na,hello,1\n,world,\n\n")
    assert [(j.id, j.values, j.error) for j in jobs] == [
        ("a", {"prompt": "hello", "seed": "1"}, None),
        ("row2", {"prompt": "world"}, None),
    ]
    assert jobs[1].source == "jobs.csv:3"


def test_csv_bad_row_is_a_job_error_not_a_crash():
    jobs = parse_csv('prompt,seed\n"a, b",1\nx,2,3\n"y",4\n')
    assert jobs[0].values == {"prompt": "a, b", "seed": "1"}
    assert jobs[1].error and "3 fields, the header has 2" in jobs[1].error
    assert jobs[2].error is None


@pytest.mark.parametrize(
    "text,match", [("", "empty"), ("a,,b\n1,2,3\n", "empty column name"), ("a,a\n1,2\n", "repeats columns")]
)
def test_csv_unusable_files_raise(text, match):
    with pytest.raises(JobError, match=match):
        parse_csv(text)


def test_jsonl_bad_lines_become_job_errors(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id": "a", "seed": 3}\n# comment\n{"seed": \n[1, 2]\n{"id": "a"}\n')
    jobs = read_jobs(path)
    assert [j.id for j in jobs] == ["a", "row2", "row3", "a"]
    assert jobs[0].values == {"seed": 3} and jobs[0].error is None
    assert "jobs.jsonl:3: not valid JSON" in jobs[1].error
    assert "expected a JSON object, got list" in jobs[2].error
    assert "already used at jobs.jsonl:1" in jobs[3].error


def test_unknown_job_file_kinds(tmp_path):
    with pytest.raises(JobError, match="does not exist"):
        read_jobs(tmp_path / "nope.csv")
    (tmp_path / "jobs.txt").write_text("x")
    with pytest.raises(JobError, match=r"\.csv or \.jsonl"):
        read_jobs(tmp_path / "jobs.txt")
    assert parse_jsonl('{"a.b": 1}')[0].values == {"a.b": 1}


# -- addressing -------------------------------------------------------------------------------------------
def test_address_by_title_id_and_case(prompt, object_info):
    assert resolve_key(prompt, object_info, "Positive.text") == [("2", "text")]
    assert resolve_key(prompt, object_info, "positive.text") == [("2", "text")]
    assert resolve_key(prompt, object_info, "5.steps") == [("5", "steps")]
    assert resolve_key(prompt, object_info, "Empty Latent Image.width") == [("4", "width")]


def test_address_errors_name_the_problem(prompt, object_info):
    with pytest.raises(JobError, match=r"no node titled or numbered 'Nope'.*'Positive'"):
        resolve_key(prompt, object_info, "Nope.text")
    with pytest.raises(JobError, match=r"has no input 'txt'.*\['clip', 'text'\]"):
        resolve_key(prompt, object_info, "Positive.txt")
    prompt["3"]["_meta"]["title"] = "Positive"
    with pytest.raises(JobError, match=r"2 nodes are titled 'Positive'.*use the node id"):
        resolve_key(prompt, object_info, "Positive.text")
    with pytest.raises(JobError, match="not a shortcut"):
        resolve_key(prompt, object_info, "colour")


def test_shortcuts(prompt, object_info):
    assert resolve_key(prompt, object_info, "prompt") == [("2", "text")]
    assert resolve_key(prompt, object_info, "negative") == [("3", "text")]
    assert resolve_key(prompt, object_info, "seed") == [("5", "seed")]
    assert resolve_key(prompt, object_info, "size") == [("4", "width"), ("12", "width")]
    assert resolve_key(prompt, object_info, "prefix") == [("9", "filename_prefix")]
    assert resolve_key(prompt, object_info, "image") == [("11", "image")]
    with pytest.raises(JobError, match="no input this shortcut sets"):
        resolve_key(prompt, object_info, "audio")


def test_prompt_shortcut_refuses_to_guess(prompt, object_info):
    prompt["2"]["_meta"]["title"] = "Text A"
    prompt["3"]["_meta"]["title"] = "Text B"
    with pytest.raises(JobError, match="cannot tell which text input is the positive prompt"):
        resolve_key(prompt, object_info, "prompt")


# -- values -------------------------------------------------------------------------------------------------
def test_coerce_types_and_ranges(object_info):
    seed = object_info["KSampler"]["input"]["required"]["seed"]
    steps = object_info["KSampler"]["input"]["required"]["steps"]
    cfg = object_info["KSampler"]["input"]["required"]["cfg"]
    sampler = object_info["KSampler"]["input"]["required"]["sampler_name"]
    assert coerce("18446744073709551615", seed, "s") == 18446744073709551615  # exact, not via float
    assert coerce("1e3", steps, "s") == 1000 and coerce(7, steps, "s") == 7
    assert coerce("4.5", cfg, "c") == 4.5
    assert coerce("uni_pc", sampler, "x") == "uni_pc"
    assert coerce("yes", ["BOOLEAN", {}], "b") is True and coerce(False, ["BOOLEAN", {}], "b") is False
    for value, spec, match in [
        ("1.5", steps, "not an integer"),
        ("0", steps, r"outside \[1, 10000\]"),
        ("x", cfg, "not a number"),
        (True, steps, "not an integer"),
        ("eulerr", sampler, "'eulerr' is not one of"),
        ("maybe", ["BOOLEAN", {}], "true/false"),
        ({"a": 1}, ["STRING", {}], "expected text"),
        ("x", ["MODEL", {}], "takes a link"),
    ]:
        with pytest.raises(JobError, match=match):
            coerce(value, spec, "col")


def test_plan_applies_values_and_uploads_local_files(tmp_path, prompt, object_info):
    (tmp_path / "me.png").write_bytes(b"\x89PNG fake")
    plan = plan_job(
        prompt,
        object_info,
        job(
            prompt="a dancer",
            seed="42",
            size="96x64",
            image="me.png",
            **{"KSampler.steps": "4", "Save Image.filename_prefix": "out/a"},
        ),
        tmp_path,
    )
    p = plan.prompt
    assert p["2"]["inputs"]["text"] == "a dancer"
    assert p["5"]["inputs"]["seed"] == 42  # replaces the link from the PrimitiveInt node
    assert p["5"]["inputs"]["steps"] == 4
    assert (p["4"]["inputs"]["width"], p["4"]["inputs"]["height"]) == (96, 64)
    assert (p["12"]["inputs"]["width"], p["12"]["inputs"]["height"]) == (96, 64)
    assert p["9"]["inputs"]["filename_prefix"] == "out/a"
    assert [(u.node_id, u.input, u.path.name) for u in plan.uploads] == [("11", "image", "me.png")]
    assert prompt["2"]["inputs"]["text"] != "a dancer"  # the template is not modified


def test_plan_reports_every_problem_of_a_job(tmp_path, prompt, object_info):
    with pytest.raises(JobError) as e:
        plan_job(
            prompt,
            object_info,
            job(image="missing.png", seed="x", size="big", **{"KSampler.model": "m"}, **{"Nobody.text": "a"}),
            tmp_path,
        )
    msg = str(e.value)
    for part in [
        "file 'missing.png' not found",
        "'x' is not an integer",
        "'big' is not a size",
        "MODEL connection",
        "no node titled or numbered 'Nobody'",
    ]:
        assert part in msg


def test_plan_accepts_files_already_on_the_server(tmp_path, prompt, object_info):
    plan = plan_job(prompt, object_info, job(image="example.png"), tmp_path)
    assert plan.uploads == [] and plan.prompt["11"]["inputs"]["image"] == "example.png"


def test_bad_row_fails_its_plan(tmp_path, prompt, object_info):
    with pytest.raises(JobError, match="header has 2"):
        plan_job(
            prompt, object_info, Job("row1", "jobs.csv:2", error="jobs.csv:2: has 3 fields, the header has 2"), tmp_path
        )


def test_fingerprint_follows_prompt_and_file_contents(tmp_path, prompt, object_info):
    img = tmp_path / "me.png"
    img.write_bytes(b"one")
    a = plan_job(prompt, object_info, job(image="me.png"), tmp_path).fingerprint()
    assert plan_job(prompt, object_info, job(image="me.png"), tmp_path).fingerprint() == a
    img.write_bytes(b"two")
    b = plan_job(prompt, object_info, job(image="me.png"), tmp_path).fingerprint()
    c = plan_job(prompt, object_info, job(image="me.png", seed="1"), tmp_path).fingerprint()
    assert len({a, b, c}) == 3


def test_validate_prompt_finds_what_the_server_would_refuse(prompt, object_info):
    assert validate_prompt(prompt, object_info) == []
    del prompt["5"]["inputs"]["steps"]
    prompt["6"]["inputs"]["vae"] = ["77", 0]
    prompt["2"]["inputs"]["clip"] = ["1", 5]
    prompt["4"]["inputs"]["width"] = 0
    prompt["13"]["class_type"] = "Gone"
    problems = "\n".join(validate_prompt(prompt, object_info))
    assert "node 5 (KSampler): required input 'steps' is missing" in problems
    assert "links to node 77, which is not in the prompt" in problems
    assert "links to output 5 of node 1, which has 3 outputs" in problems
    assert "node 4 (Empty Latent Image) input 'width': 0 is outside [16, 16384]" in problems
    assert "'Gone' is not installed" in problems


def test_csv_unbalanced_quote_is_refused():
    with pytest.raises(JobError, match=r"jobs.csv:4: unexpected end of data \(a quote is not closed"):
        parse_csv('id,prompt\na,"fine ""quoted"" text"\nb,"never closed\nc,lost row\n')


def test_local_files_must_lie_under_the_job_folder_or_an_allowed_one(tmp_path, prompt, object_info):
    jobs_dir, other = tmp_path / "jobs", tmp_path / "other"
    jobs_dir.mkdir()
    other.mkdir()
    (other / "me.png").write_bytes(b"\x89PNG fake")
    (jobs_dir / "link.png").symlink_to(other / "me.png")
    for name in ("../other/me.png", str(other / "me.png"), "link.png"):
        with pytest.raises(JobError, match="is outside the job file's folder; allow its folder with --allow-dir"):
            plan_job(prompt, object_info, job(image=name), jobs_dir)
        plan = plan_job(prompt, object_info, job(image=name), jobs_dir, [other])
        assert [u.path for u in plan.uploads] == [(other / "me.png").resolve()]


def test_dynamic_combo_values_are_checked_against_their_option_keys():
    """ComfyUI 0.33's dynamic combos (core SaveVideo's format / codec) take one of their options' keys."""
    from humanvideo.batch.jobs import DYNAMIC_COMBO, JobError, coerce

    spec = (DYNAMIC_COMBO, {"options": [{"key": "auto", "inputs": {}}, {"key": "mp4", "inputs": {"required": {}}}]})
    assert coerce("mp4", spec, "node 5 (Save) input 'format'") == "mp4"
    with pytest.raises(JobError, match="'webm' is not one of \\['auto', 'mp4'\\]"):
        coerce("webm", spec, "node 5 (Save) input 'format'")
