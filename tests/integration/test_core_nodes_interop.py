"""The pack's outputs are core types that core's own nodes take (README, "Works with core nodes"): the mp4
HVSaveVideo writes comes back as a core VIDEO that core's GetVideoComponents splits into its frames."""

import pytest

pytestmark = pytest.mark.integration


def test_our_video_output_feeds_core_video_nodes(comfy):
    frames = 10
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": frames, "color": 0}},
        "2": {
            "class_type": "HVSaveVideo",
            "inputs": {
                "images": ["1", 0],
                "fps": 25.0,
                "filename_prefix": "HumanVideo/interop",
                "quality_crf": 19,
                "length_from": "video",
                "ai_label": False,
                "label_corner": "bottom-right",
                "label_size": 0.05,
                "label_opacity": 0.7,
            },
        },
        "3": {"class_type": "GetVideoComponents", "inputs": {"video": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "HumanVideo/interop_frame"}},
    }
    result = comfy.run(prompt, timeout=120)
    assert result.ok, result.error
    assert len([f for f in result.files if f.suffix == ".png"]) == frames
