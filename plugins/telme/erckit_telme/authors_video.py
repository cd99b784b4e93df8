"""The visual student's input as TelME's authors produced it (``preprocessing = "authors"``).

Their frames (MELD/utils.py and IEMOCAP/utils.py ``get_video``) are read with OpenCV
(``cv2.VideoCapture``, BGR, fed to the processor as if RGB), then the processor
``AutoImageProcessor.from_pretrained("MCG-NJU/videomae-base")`` of transformers 4.27.2
(``VideoMAEImageProcessor``, the slow PIL path) made them ``pixel_values [8, 3, 224, 224]``:

* MELD, a whole clip (``start`` and ``end`` None): ``step = CAP_PROP_FRAME_COUNT // 8``; every
  frame read is counted from 1 and kept when ``count % step == 0``; the first 8 kept. A clip of
  fewer than 8 frames keeps all of them and repeats the last.
* IEMOCAP, a window of a dialogue video: their ``[start - 1, end + 1]`` (erckit's IEMOCAP reader
  already widened ``Utterance.start``/``end`` so, ``AUTHORS_MARGIN``), ``step = fps * (end - start)
  // 8`` (a float); a frame counts when ``CAP_PROP_POS_FRAMES`` after reading it lies in
  ``[fps * start, fps * end]``; kept when ``count % step == 0``; fewer than 8: the last repeated.
* The processor: shorter side to 224 with PIL's bilinear filter, the longer to
  ``int(224 * long / short)``; centre crop 224 at ``((h - 224) // 2, (w - 224) // 2)``; then
  ``x * (1/255)`` in float64 cast to float32 and ``(x - mean) / std`` in float32 with ImageNet's
  mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) (videomae-base's processor config).
* MELD clips whose audio lasts over 30 s by librosa (``make_batchs``) became
  ``torch.zeros(8, 3, 224, 224)``: zeros after normalisation (``zero_longer_than``; whole clips
  only: IEMOCAP's windows had no such rule).

``read_frames_authors`` is the data pipeline's decoder (``DecoderSpec``): frame choice, resize and
crop, uint8 ``[8, S, S, 3]`` BGR, cached like any decode; or ``[0, S, S, 3]`` for a clip over
``zero_longer_than``. ``pixel_values`` rescales and normalises in the encoder. ``S`` is the model's
``image_size`` (224 for the authors' TimeSformer; a tiny test model may use less).

Where the authors' code could not go on, erckit raises ``MediaError`` (the media policy decides):
an unreadable file, a clip with no frame in its span, an IEMOCAP window under 8 frames (their
``count % 0.0``). A MELD clip whose frame count promises more frames than it holds, leaving fewer
than 8 kept (their processor then made a shorter clip that no batch could stack), gets its last
kept frame repeated, as their short-clip rule does.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator

from erckit.errors import ErckitError, MediaError

if TYPE_CHECKING:
    import numpy as np
    import torch

FRAMES = 8
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # IMAGENET_DEFAULT_MEAN, in videomae-base's preprocessor_config.json
IMAGENET_STD = (0.229, 0.224, 0.225)
RESCALE = 1 / 255
EXTRA = 'pip install "erckit-telme[authors]"'


_PACKAGES = {"cv2": "OpenCV", "librosa": "librosa", "PIL": "Pillow"}


def require(module: str, what: str = 'preprocessing = "authors"') -> ModuleType:
    """``module`` imported, or the one-line error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ErckitError(f"{what} needs {_PACKAGES.get(module, module)}: {EXTRA}") from None


def check_extra(zero_longer_than: float | None) -> None:
    """The error an encoder raises at build time when the authors' readers are not installed."""
    require("cv2")
    require("PIL")
    if zero_longer_than is not None:
        require("librosa", "zero_longer_than")


# -- the decoder (data-loader workers) --------------------------------------------------------


def read_frames_authors(
    path: Path, start: float | None, end: float | None, size: int = 224, frames: int = FRAMES,
    zero_longer_than: float | None = None,
) -> "torch.Tensor":
    """uint8 [frames, size, size, 3] BGR as the authors chose, resized and cropped; [0, size, size, 3] when zeroed."""
    import numpy as np
    import torch

    cv2 = require("cv2")
    if start is None and end is None:
        # Their MELD rule, for a whole clip; a window of a longer video (IEMOCAP) had none.
        if zero_longer_than is not None and librosa_seconds(path) > zero_longer_than:
            return torch.zeros(0, size, size, 3, dtype=torch.uint8)
        chosen = clip_frames(cv2, path, frames)
    else:
        if end is None:
            raise MediaError(path, "the authors' window rule needs an end time")
        chosen = window_frames(cv2, path, start or 0.0, end, frames)
    return torch.from_numpy(np.stack([resize_and_crop_427(image, size) for image in chosen]))


def clip_frames(cv2: Any, path: Path, count: int = FRAMES) -> list["np.ndarray"]:
    """MELD's rule over the whole clip (BGR frames as OpenCV reads them)."""
    video = _open(cv2, path)
    try:
        length = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        # Under `count` frames they kept every frame (then the first `count`): step 1.
        kept = _every_step(_reads(video), length // count if length >= count else 1, count)
    finally:
        video.release()
    return _filled(path, kept, count)


def window_frames(cv2: Any, path: Path, start: float, end: float, count: int = FRAMES) -> list["np.ndarray"]:
    """IEMOCAP's rule over ``[start, end]`` seconds (the span already widened by their margin)."""
    video = _open(cv2, path)
    try:
        fps = video.get(cv2.CAP_PROP_FPS)
        step = fps * (end - start) // count  # a float, as theirs
        if step <= 0:
            raise MediaError(path, f"{fps * (end - start):.1f} frames in {start}-{end} s: fewer than {count}")
        kept = _every_step(_window_reads(cv2, video, fps * start, fps * end), step, count)
    finally:
        video.release()
    return _filled(path, kept, count, f" in {start}-{end} s")


def _every_step(images: Iterator["np.ndarray"], step: float, count: int) -> list["np.ndarray"]:
    """The images numbered (from 1) by a multiple of ``step``, the first ``count`` of them.

    They read on after the last one kept; that changes nothing kept, so reading stops here.
    """
    kept = []
    for seen, image in enumerate(images, start=1):
        if seen % step == 0:
            kept.append(image)
            if len(kept) == count:
                break
    return kept


def _reads(video: Any) -> Iterator["np.ndarray"]:
    while True:
        ok, image = video.read()
        if not ok:
            return
        yield image


def _window_reads(cv2: Any, video: Any, first: float, last: float) -> Iterator["np.ndarray"]:
    """The frames whose ``CAP_PROP_POS_FRAMES`` after reading lies in ``[first, last]``."""
    while True:
        # read() is grab() + retrieve(): frames before the window are grabbed only, not
        # converted to BGR (a third faster through a long dialogue video; same positions).
        if not video.grab():
            return
        position = int(video.get(cv2.CAP_PROP_POS_FRAMES))
        if position > last:
            return  # positions only grow: no later frame is in the window
        if position < first:
            continue
        ok, image = video.retrieve()
        if not ok:
            return
        yield image


def _open(cv2: Any, path: Path) -> Any:
    video = cv2.VideoCapture(str(path))
    if not video.isOpened():
        video.release()
        raise MediaError(path, "OpenCV cannot open this video")
    return video


def _filled(path: Path, kept: list["np.ndarray"], count: int, where: str = "") -> list["np.ndarray"]:
    if not kept:
        raise MediaError(path, f"OpenCV read no frame{where}")
    return kept[:count] + [kept[-1]] * (count - len(kept))


def resize_and_crop_427(image: "np.ndarray", size: int) -> "np.ndarray":
    """uint8 [H, W, 3] -> [size, size, 3]: transformers 4.27.2's VideoMAE resize (PIL bilinear) + centre crop."""
    import numpy as np
    from PIL import Image

    height, width = image.shape[:2]
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)  # get_resize_output_image_size, default_to_square=False
    out_h, out_w = (new_long, size) if width <= height else (size, new_long)
    resized = np.asarray(Image.fromarray(image).resize((out_w, out_h), resample=Image.BILINEAR))
    top, left = (out_h - size) // 2, (out_w - size) // 2
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def librosa_seconds(path: Path) -> float:
    """``librosa.get_duration(y=librosa.load(path)[0], sr=22050)``, as make_batchs measured a clip.

    Through the audio student's reader (``authors_media.read_audio_authors``, which reads an mp4 as
    librosa's audioread fallback did, without an ffmpeg program).
    """
    from .authors_media import AUTHORS_RATE, read_audio_authors

    return read_audio_authors(Path(path)).shape[0] / AUTHORS_RATE


# -- the encoder's half (featurize) -----------------------------------------------------------


def pixel_values(frames: "torch.Tensor", count: int, size: int) -> "torch.Tensor":
    """uint8 [count, S, S, 3] -> float32 [count, 3, S, S] as 4.27 rescaled and normalised; empty -> zeros."""
    import torch

    if frames.numel() == 0:
        return torch.zeros(count, 3, size, size)
    if tuple(frames.shape) != (count, size, size, 3) or frames.dtype != torch.uint8:
        raise ErckitError(f"authors' frames must be uint8 [{count}, {size}, {size}, 3], got {tuple(frames.shape)} {frames.dtype}")
    # rescale: uint8 * (1/255) in float64 (numpy's promotion), then .astype(float32)
    scaled = (frames.permute(0, 3, 1, 2).double() * RESCALE).float()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (scaled - mean) / std


__all__ = ["check_extra", "clip_frames", "librosa_seconds", "pixel_values", "read_frames_authors", "resize_and_crop_427", "window_frames"]
