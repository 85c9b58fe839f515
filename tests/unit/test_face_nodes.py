"""The face nodes in-process: schema (tooltips, pack type) and a track -> paste run on the real photo."""

import hv_fixtures.media as fixture_media
import pytest
import torch
from humanvideo.media.face_detect import LANDMARKS_68, PACKAGE_PREFIX
from humanvideo.nodes.face import NODES, HVFacePaste, HVFaceTrack


def test_schemas_have_tooltips_and_the_track_type():
    for node in NODES:
        schema = node.define_schema()
        assert schema.node_id.startswith("HV") and schema.category == "HumanVideo/lipsync" and schema.description
        for item in schema.inputs + schema.outputs:
            assert item.tooltip, f"{schema.node_id}.{item.id} has no tooltip"
    track_out = HVFaceTrack.define_schema().outputs[0]
    assert track_out.io_type == "HV_FACE_TRACK"
    assert PACKAGE_PREFIX + LANDMARKS_68 in HVFaceTrack.define_schema().inputs[1].options


def _run_track(images, **overrides):
    args = dict(
        images=images,
        face_model=PACKAGE_PREFIX + LANDMARKS_68,
        resolution="256 (LatentSync 1.5)",
        select="largest",
        face_index=0,
        smoothing=1.0,
        detector="hog",
        upsample=1,
        min_score=0.5,
    )
    args.update(overrides)
    return HVFaceTrack.execute(**args)


def test_track_then_paste_round_trip():
    photo = torch.from_numpy(fixture_media.face_photo()).float().div(255)
    images = torch.stack([photo, torch.full_like(photo, 0.2)])  # second frame: no face
    track, crops, report = _run_track(images).result
    assert crops.shape == (2, 256, 256, 3) and track.missing_frames == [1]
    assert "no face (passed through unchanged) in 1: 1" in report
    (out,) = HVFacePaste.execute(images=images, faces=crops, face_track=track, region="mouth").result
    assert out.shape == images.shape
    assert torch.equal(out[1], images[1])
    assert (out[0] - images[0]).abs().max() < 0.2


def test_bad_inputs_are_value_errors():
    photo = torch.from_numpy(fixture_media.face_photo()).float().div(255)[None]
    with pytest.raises(ValueError, match="resolution"):
        _run_track(photo, resolution="384")
    with pytest.raises(ValueError, match="face_model: 'missing_68.dat' is not a file in models/face_detection"):
        _run_track(photo, face_model="missing_68.dat")
    track, crops, _ = _run_track(photo).result
    with pytest.raises(ValueError, match="do not match the face track"):
        HVFacePaste.execute(images=torch.cat([photo, photo]), faces=crops, face_track=track, region="mouth")
    with pytest.raises(ValueError, match="faces: crops must be square"):
        HVFacePaste.execute(images=photo, faces=crops[:, :, :200], face_track=track, region="mouth")
