"""Face detection and landmarks for the LatentSync face pipeline.

Backend: dlib (``dlib-bin`` wheel, Boost licence, ~4 MB, no runtime downloads) with its HOG frontal
face detector (built into the library, no weight file) or the MMOD CNN detector, and the iBUG
68-point shape predictor. The 68-point set has both eyebrows and the nose, so the three alignment
points are computed exactly as LatentSync 1.5 computed them at release (then with face_alignment's
68-point FAN): eyebrow centres = mean of points 17-21 and 22-26, nose centre = mean of 27-35.
The 106-point InsightFace layout of later LatentSync code is understood too (see
:func:`alignment_points`), so a second backend only has to produce landmarks.

Weight files are given as paths (the ComfyUI nodes resolve them inside ``models/face_detection``), or
as ``face_recognition_models/<file>`` for the files the PyPI package ``face_recognition_models`` ships
when it is installed (the same dlib files).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass

import numpy as np

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
CNN_DETECTOR = "mmod_human_face_detector.dat"
PACKAGE_PREFIX = "face_recognition_models/"  # choice names of files shipped by that PyPI package
DETECTORS = ("hog", "cnn")


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2 in frame pixels
    landmarks: np.ndarray  # (K, 2) float32 x, y
    score: float

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))

    @property
    def centre(self) -> tuple[float, float]:
        return float(self.box[0] + self.box[2]) / 2, float(self.box[1] + self.box[3]) / 2


def alignment_points(landmarks: np.ndarray) -> np.ndarray:
    """(3, 2) float64: image-left eyebrow centre, image-right eyebrow centre, nose centre."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape == (68, 2):  # iBUG 300-W layout (dlib, face_alignment)
        return np.stack([lm[17:22].mean(0), lm[22:27].mean(0), lm[27:36].mean(0)])
    if lm.shape == (106, 2):  # InsightFace 2d106det layout (LatentSync since April 2025)
        return np.stack([lm[[43, 48, 49, 51, 50]].mean(0), lm[101:106].mean(0), lm[[74, 77, 83, 86]].mean(0)])
    raise ValueError(f"landmarks must be (68, 2) or (106, 2), got {lm.shape}")


def _import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise RuntimeError("face detection needs dlib: install the 'dlib-bin' wheel (pip install dlib-bin)") from e
    return dlib


def _package_models_dir() -> str | None:
    # find_spec does not run the package's __init__, which imports the removed pkg_resources.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "models")
    return path if os.path.isdir(path) else None


def packaged_model_names() -> list[str]:
    """Choice names of the 68-point predictor shipped by face_recognition_models (empty if absent)."""
    packaged = _package_models_dir()
    if packaged and os.path.isfile(os.path.join(packaged, LANDMARKS_68)):
        return [PACKAGE_PREFIX + LANDMARKS_68]
    return []


def packaged_model_file(file_name: str) -> str | None:
    """Path of a file shipped by face_recognition_models, or None when the package or file is absent."""
    packaged = _package_models_dir()
    path = os.path.join(packaged, os.path.basename(file_name)) if packaged else ""
    return path if path and os.path.isfile(path) else None


def model_file(name: str) -> str:
    """A ``face_recognition_models/<file>`` name as its packaged path; any other name is a path already."""
    if not name.startswith(PACKAGE_PREFIX):
        return name
    path = packaged_model_file(name[len(PACKAGE_PREFIX) :])
    if path is None:
        raise ValueError(f"face model {name!r}: the face_recognition_models package is not installed")
    return path


@functools.lru_cache(maxsize=2)
def _load_predictor(path: str, mtime: float):
    return _import_dlib().shape_predictor(path)


@functools.lru_cache(maxsize=1)
def _load_cnn(path: str, mtime: float):
    return _import_dlib().cnn_face_detection_model_v1(path)


class DlibFaceDetector:
    """``detect(frame_rgb_uint8) -> list[Face]`` with 68 landmarks per face.

    Detection runs on a copy scaled so its longer side is at most ``max_side`` (HOG cost grows with
    the pixel count while faces in video are large); landmarks run on the full-resolution frame.
    ``upsample`` doubles the detection image that many times to find faces smaller than ~80 px.
    """

    def __init__(
        self,
        landmark_model: str,
        detector: str = "hog",
        upsample: int = 1,
        max_side: int = 640,
        min_score: float = 0.5,
        min_size: int = 40,
        cnn_model: str | None = None,
    ):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if upsample < 0 or upsample > 3:
            raise ValueError(f"upsample must be 0..3, got {upsample}")
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        dlib = _import_dlib()
        path = model_file(landmark_model)
        self.name = f"dlib-{detector}"
        self._dlib = dlib
        self._predictor = _load_predictor(path, os.path.getmtime(path))
        self.model_name = landmark_model
        if detector == "cnn":
            cnn_path = model_file(cnn_model) if cnn_model else packaged_model_file(CNN_DETECTOR)
            if cnn_path is None:
                raise ValueError(f"detector 'cnn' needs {CNN_DETECTOR} in models/face_detection")
            self._cnn = _load_cnn(cnn_path, os.path.getmtime(cnn_path))
        else:
            self._hog = dlib.get_frontal_face_detector()
        self.detector, self.upsample, self.max_side = detector, upsample, max_side
        self.min_score, self.min_size = min_score, min_size

    def _detect_boxes(self, small: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        if self.detector == "cnn":
            found = self._cnn(small, self.upsample)
            return [
                ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), float(d.confidence)) for d in found
            ]
        rects, scores, _ = self._hog.run(small, self.upsample, 0.0)
        return [((r.left(), r.top(), r.right(), r.bottom()), float(s)) for r, s in zip(rects, scores, strict=True)]

    def detect(self, frame: np.ndarray) -> list[Face]:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}")
        frame = np.ascontiguousarray(frame)
        h, w, _ = frame.shape
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            from PIL import Image

            size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
            small = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR, reducing_gap=2.0))
        else:
            small = frame
        faces = []
        for (x1, y1, x2, y2), score in self._detect_boxes(small):
            if score < self.min_score:
                continue
            box = np.array([x1, y1, x2 + 1, y2 + 1], dtype=np.float64) / scale
            if min(box[2] - box[0], box[3] - box[1]) < self.min_size:
                continue
            rect = self._dlib.rectangle(*(int(round(v)) for v in (box[0], box[1], box[2] - 1, box[3] - 1)))
            shape = self._predictor(frame, rect)
            if shape.num_parts != 68:  # dlib only tells the point count after a prediction
                raise ValueError(
                    f"face model {self.model_name!r} gives {shape.num_parts} landmarks; a 68-point "
                    f"predictor ({LANDMARKS_68}) is needed for the eyebrows"
                )
            lm = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            faces.append(Face(box=box.astype(np.float32), landmarks=lm, score=score))
        return faces
