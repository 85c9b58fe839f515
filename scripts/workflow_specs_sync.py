"""Lip-sync scoring workflows: a plain scorer (also the --score-workflow of hv_batch), LatentSync scored
before and after re-sync, and HuMo-1.7B with a score for hv_batch --best-of 4."""

from __future__ import annotations

from dataclasses import replace

from build_workflows import Guide, Node, Stage, Workflow
from workflow_specs_humo import HUMO_1_7B, humo_single
from workflow_specs_latentsync import MODELS as LATENTSYNC_MODELS
from workflow_specs_latentsync import latentsync

SYNCNET = "syncnet_v2.model"
LANDMARKS = "shape_predictor_68_face_landmarks.dat"
MODELS = {
    SYNCNET: {
        "name": SYNCNET,
        "url": "https://huggingface.co/ByteDance/LatentSync-1.5/resolve/main/auxiliary/syncnet_v2.model",
        "directory": "latentsync",
    },
}
TEST_FILES: dict[str, str] = {}  # the SyncNet fixture has the real file name


def _scorer(node_id: int, links: dict, title: str) -> Node:
    return Node(
        node_id,
        "HVSyncScore",
        {"face_model": LANDMARKS, "detector": "hog", "min_track": 50, "min_face_size": 100},
        links=links,
        title=title,
        models=[LATENTSYNC_MODELS["dlib_landmarks"]],
    )


SYNCNET_STEP = (
    "Put `latentsync/syncnet_v2.model` (ByteDance/LatentSync-1.5, `auxiliary/syncnet_v2.model`) and "
    "`face_detection/shape_predictor_68_face_landmarks.dat` (dlib; or `pip install face_recognition_models`) into "
    "`ComfyUI/models/` (the loaders' download links appear under *Missing Models* when a file is absent)."
)
SCORE_SETTINGS = [
    "**min_track** (Lip-Sync Score): the official evaluation scores face tracks of 50 frames (2 s) or more; lower "
    "it for shorter clips.",
    "**detector**: `hog` (fast, frontal faces) or `cnn` (slower, more poses).",
]
SCORE_COST = (
    "Scoring: no official figure; SyncNet is small (about 50 MB) and scores a clip in seconds on a GPU, the face "
    "tracking runs on the CPU and takes longer for long videos."
)


def sync_score_video() -> Workflow:
    return Workflow(
        name="sync_score_video",
        guide=Guide(
            what=(
                "**Lip-sync scores** of any video with its sound track: Sync-C (higher is better), Sync-D (lower is "
                "better) and the audio-video offset, as the official SyncNet evaluation computes them, per speaker, "
                "with a confidence-over-time plot. It is also the scoring workflow of `hv_batch --score-workflow`."
            ),
            steps=[
                SYNCNET_STEP,
                "**Video to score**: upload a video with its sound track.",
                "Press **Run**. The scores, a text report and the plot appear in *Lip-Sync Score*.",
            ],
            settings=SCORE_SETTINGS,
            cost=[SCORE_COST],
        ),
        stages=[Stage("The video and the scorer", [[1], [2]]), Stage("Score", [[3]])],
        nodes=[
            Node(1, "LoadVideo", {"file": "face.mp4"}, title="Video to score"),
            Node(2, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, models=[MODELS[SYNCNET]]),
            _scorer(3, {"syncnet": (2, 0), "video": (1, 0)}, "Lip-sync score"),
        ],
    )


def latentsync_scored() -> Workflow:
    """latentsync_1.5_256 with the new speech scored against the original lips (before) and the result (after)."""
    base = latentsync("1.5", 256)
    nodes = base.nodes + [
        Node(11, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, models=[MODELS[SYNCNET]]),
        _scorer(
            12,
            {"syncnet": (11, 0), "images": (2, 0), "audio": (3, 0), "fps": (2, 2)},
            "Score before (original lips, new speech)",
        ),
        _scorer(
            13, {"syncnet": (11, 0), "images": (9, 0), "audio": (3, 0), "fps": (9, 1)}, "Score after (re-synced lips)"
        ),
    ]
    guide = replace(
        base.guide,
        what=base.guide.what
        + " The new speech is scored against the original lips (before) and against the re-synced lips (after): "
        "Sync-C should rise and Sync-D fall.",
        steps=[base.guide.steps[0], SYNCNET_STEP, *base.guide.steps[1:]],
        settings=base.guide.settings + SCORE_SETTINGS,
        cost=base.guide.cost + [SCORE_COST],
    )
    stages = base.stages + [Stage("Score before and after", [[11], [12, 13]])]
    return Workflow(name="latentsync_1.5_scored", nodes=nodes, stages=stages, guide=guide)


def humo_best_of() -> Workflow:
    """HuMo-1.7B TIA with a score of its own output, for hv_batch --best-of 4 --rank-by sync_c."""
    base = humo_single("humo_1.7b_best_of_4", HUMO_1_7B, "480x832", True, "HuMo-1.7B official")
    nodes = base.nodes + [
        Node(30, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, models=[MODELS[SYNCNET]]),
        _scorer(31, {"syncnet": (30, 0), "images": (22, 0), "audio": (7, 0)}, "Lip-sync score"),
    ]
    guide = replace(
        base.guide,
        what=base.guide.what
        + " The video is then scored for lip sync, so a batch can run it several times and keep the best: "
        "`python scripts/hv_batch.py workflows/api/humo_1.7b_best_of_4.json jobs.csv --best-of 4 --rank-by sync_c` "
        "(seeds seed .. seed+3; every score lands in the results file, the best one is marked and copied with "
        "`--download`).",
        steps=[base.guide.steps[0], SYNCNET_STEP, *base.guide.steps[1:]],
        settings=base.guide.settings + SCORE_SETTINGS,
        cost=base.guide.cost + [SCORE_COST],
    )
    stages = base.stages + [Stage("Score", [[30, 31]])]
    return Workflow(name=base.name, nodes=nodes, stages=stages, guide=guide)


WORKFLOWS = [sync_score_video(), latentsync_scored(), humo_best_of()]
