"""An inference run of a model bag over image files, for ``tools/infer.py``.

Writes into the output folder, which appears only when the run ends (a failed run leaves
no partial folder; an earlier run's folder is replaced):

* ``predictions.json``: ``results`` (COCO results with the bag's category ids), the image
  list ``images`` (id, file name, height, width), ``categories``, the images that
  ``failed`` with their error, and the bag it came from. Results are streamed to the file
  image by image, so memory stays flat on long folders;
* ``vis/<image name>.jpg``: one overlay per image (detections above the threshold);
* ``report/index.html``: the run's static report.

An unreadable image is reported on one line and counted; the others still run.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from tqdm import tqdm

from custom_modules.formats import FormatError, atomic_directory, atomic_output

from .images import ImageFile
from .predictor import ImagePrediction, ImageReadError, ModelBag

PREDICTIONS_NAME = 'predictions.json'
# images per second rather than tqdm's seconds per image when a model is slow
PROGRESS_FORMAT = ('{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} '
                   '[{elapsed}<{remaining}, {rate_noinv_fmt}]')


@dataclass
class ImageSummary:
    """What the report shows of one predicted image."""
    id: int
    file_name: str
    height: int
    width: int
    overlay: str | None  # path relative to the output folder
    num_detections: int
    shown: list[dict]  # detections above the threshold: category_id, score, bbox

    @property
    def top_score(self) -> float:
        return max((d['score'] for d in self.shown), default=0.0)


@dataclass
class RunSummary:
    """An inference run, as its report shows it."""
    bag_path: Path
    score_thr: float
    images: list[ImageSummary] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # file_name, error
    load_s: float = 0.0
    predict_s: float = 0.0

    @property
    def images_per_s(self) -> float:
        done = len(self.images) + len(self.failed)
        return done / self.predict_s if self.predict_s > 0 else 0.0


class PredictionsWriter:
    """``predictions.json`` written as images come: each image's detections go to the
    file at once; the (small) image list is written at the end."""

    def __init__(self, file: IO, bag_path: Path, dataset: str, categories: Sequence[dict]):
        self.file = file
        self.first = True
        header = dict(bag=str(bag_path), dataset=dataset, categories=list(categories))
        file.write(json.dumps(header)[:-1] + ', "results": [')

    def add(self, detections: Sequence[dict]) -> None:
        for det in detections:
            self.file.write(('' if self.first else ',\n') + json.dumps(det))
            self.first = False

    def finish(self, images: Sequence[dict], failed: Sequence[dict]) -> None:
        self.file.write(f'], "images": {json.dumps(list(images))}, '
                        f'"failed": {json.dumps(list(failed))}}}\n')


def overlay_names(images: Sequence[ImageFile]) -> dict[str, str]:
    """``vis/<name>.jpg`` per image name (``vis/<name with its suffix>.jpg`` when two
    images differ only by suffix)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for image in images:
        name = str(Path('vis') / Path(image.name).with_suffix('.jpg'))
        if name in taken:
            name = str(Path('vis') / f'{image.name}.jpg')
        taken.add(name)
        names[image.name] = name
    return names


def check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a folder that is not an earlier run's output."""
    if out_dir.is_file() or (out_dir.is_dir() and any(out_dir.iterdir())
                             and not (out_dir / PREDICTIONS_NAME).is_file()):
        raise FormatError(f'{out_dir}: exists and is not the output of an earlier run '
                          f'(no {PREDICTIONS_NAME}); choose another --out')


def _shown(prediction: ImagePrediction, score_thr: float) -> list[dict]:
    return [dict(category_id=d['category_id'], score=d['score'], bbox=d['bbox'])
            for d in prediction.detections if d['score'] > score_thr]


def run_inference(bag: ModelBag, images: Sequence[ImageFile], out_dir: str | Path,
                  bag_path: Path, *, overlays: bool = True, score_thr: float = 0.3,
                  report: bool = True, load_s: float = 0.0) -> RunSummary:
    """Predict every image and write the run's outputs (module docstring) to ``out_dir``.

    Unreadable images are printed as ``error: <file>: ...`` and listed in the summary's
    ``failed``. ``score_thr``: the overlays' and report's display threshold (every
    detection is in ``predictions.json``).
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    summary = RunSummary(bag_path=bag_path, score_thr=score_thr, load_s=load_s)
    drawer = None
    if overlays:
        from custom_modules.visualization import OverlayDrawer  # draws with mmdet

        drawer = OverlayDrawer(bag.bag.categories, score_thr)
    names = overlay_names(images)
    image_list = []
    start = time.monotonic()
    with atomic_directory(out_dir) as staging:
        with atomic_output(staging / PREDICTIONS_NAME) as f:
            writer = PredictionsWriter(f, bag_path, bag.bag.dataset, bag.bag.categories)
            progress = tqdm(images, desc='infer', unit='img', bar_format=PROGRESS_FORMAT)
            for image_id, image in enumerate(progress, start=1):
                try:
                    loaded = bag.load(image.path)
                    prediction = bag.predict_loaded(loaded, image_id)
                except Exception as err:  # noqa: BLE001 - one image's failure, not the run's
                    message = str(err) if isinstance(err, ImageReadError) else (
                        f'{image.path}: prediction failed ({type(err).__name__}: '
                        f'{" ".join(str(err).split())})')
                    tqdm.write(f'error: {message}', file=sys.stderr)
                    summary.failed.append(dict(file_name=image.name, error=message))
                    continue
                writer.add(prediction.detections)
                entry = dict(id=image_id, file_name=image.name, height=prediction.height,
                             width=prediction.width)
                image_list.append(entry)
                overlay = None
                if drawer is not None:
                    overlay = names[image.name]
                    drawer.draw(loaded.rgb(), prediction.detections,
                                staging / overlay)
                summary.images.append(ImageSummary(
                    **entry, overlay=overlay, num_detections=len(prediction.detections),
                    shown=_shown(prediction, score_thr)))
            writer.finish(image_list, summary.failed)
        summary.predict_s = time.monotonic() - start
        if report:
            from custom_modules.html_report import write_infer_report

            write_infer_report(staging, summary, bag.bag)
    return summary
