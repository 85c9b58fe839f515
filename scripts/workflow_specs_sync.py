"""Lip-sync scoring workflows: a plain scorer (also the --score-workflow of hv_batch), LatentSync scored
before and after re-sync, and HuMo-1.7B with a score for hv_batch --best-of 4."""

from __future__ import annotations

from build_workflows import Node, Workflow
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


def _scorer(node_id: int, links: dict, pos: tuple[int, int], title: str) -> Node:
    return Node(
        node_id,
        "HVSyncScore",
        {"face_model": LANDMARKS, "detector": "hog", "min_track": 50, "min_face_size": 100},
        links=links,
        pos=pos,
        title=title,
        models=[LATENTSYNC_MODELS["dlib_landmarks"]],
    )


def sync_score_video() -> Workflow:
    return Workflow(
        name="sync_score_video",
        note=(
            "Lip-sync scores of any video with its sound track: Sync-C (higher is better), Sync-D (lower is "
            "better) and the audio-video offset, as the official SyncNet evaluation computes them, per speaker, "
            "with a confidence plot. Also the scoring workflow for hv_batch --score-workflow."
        ),
        nodes=[
            Node(1, "LoadVideo", {"file": "face.mp4"}, pos=(0, 0), title="Video to score"),
            Node(2, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, pos=(0, 420), models=[MODELS[SYNCNET]]),
            _scorer(3, {"syncnet": (2, 0), "video": (1, 0)}, (400, 0), "Lip-sync score"),
        ],
    )


def latentsync_scored() -> Workflow:
    """latentsync_1.5_256 with the new speech scored against the original lips (before) and the result (after)."""
    base = latentsync("1.5", 256)
    nodes = base.nodes + [
        Node(11, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, pos=(800, 560), models=[MODELS[SYNCNET]]),
        _scorer(
            12,
            {"syncnet": (11, 0), "images": (2, 0), "audio": (3, 0), "fps": (2, 2)},
            (1200, 420),
            "Score before (original lips, new speech)",
        ),
        _scorer(
            13,
            {"syncnet": (11, 0), "images": (9, 0), "audio": (3, 0), "fps": (9, 1)},
            (1200, 820),
            "Score after (re-synced lips)",
        ),
    ]
    return Workflow(
        name="latentsync_1.5_scored",
        note=(
            "LatentSync 1.5 with lip-sync scores before and after: the new speech against the original lips, "
            "then against the re-synced lips (Sync-C should rise, Sync-D fall). The official evaluation scores "
            "clips of 2 s or more (min_track 50); lower min_track for shorter ones."
        ),
        nodes=nodes,
    )


def humo_best_of() -> Workflow:
    """HuMo-1.7B TIA with a score of its own output, for hv_batch --best-of 4 --rank-by sync_c."""
    base = humo_single("humo_1.7b_best_of_4", HUMO_1_7B, "480x832", True, "HuMo-1.7B official", "")
    nodes = base.nodes + [
        Node(30, "HVLoadSyncNet", {"syncnet_name": SYNCNET}, pos=(1540, 420), models=[MODELS[SYNCNET]]),
        _scorer(31, {"syncnet": (30, 0), "images": (22, 0), "audio": (7, 0)}, (1920, 0), "Lip-sync score"),
    ]
    return Workflow(
        name=base.name,
        note=(
            "HuMo-1.7B (official recipe, 480x832, 97 frames at 25 fps) followed by its own lip-sync score. Run "
            "it several times and keep the best: python scripts/hv_batch.py workflows/api/humo_1.7b_best_of_4.json "
            "jobs.csv --best-of 4 --rank-by sync_c (seeds seed .. seed+3; every score lands in the results "
            "file, the best one is marked, and copied with --download)."
        ),
        nodes=nodes,
    )


WORKFLOWS = [sync_score_video(), latentsync_scored(), humo_best_of()]
