"""Validation of a VISION-layout data root, reporting every problem on its own line.

Each problem names the annotation file it was found in, so a user can fix the data before
hours of training fail on it. :func:`require_valid_split` gives the converters the same
guarantees as a hard error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from pycocotools import mask as mask_utils

from custom_modules.formats import FormatError

from .annotations import annotation_rle, annotation_where, load_coco, polygon_perimeter
from .registry import (SPLITS, VISION_CLASSES, annotation_path, available_datasets,
                       image_dir)

# A box may differ from the mask's tight box by this much per side (polygon rasterisation).
BOX_TOLERANCE = 1.0
# A polygon's area may differ from its rasterised area by half a pixel along its outline.
AREA_TOLERANCE_PER_OUTLINE_PIXEL = 0.5
AREA_TOLERANCE = 1.0


@dataclass
class CheckReport:
    """Problems found (one line each) and ``dataset -> split -> (images, annotations)``."""
    problems: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        return [
            f'{dataset}: ' + ', '.join(f'{split} {n_img} images / {n_ann} annotations'
                                       for split, (n_img, n_ann) in splits.items())
            for dataset, splits in self.counts.items()
        ]


def _image_problems(path: Path, coco: dict, folder: Path) -> list[str]:
    problems = []
    ids: set[int] = set()
    stems: dict[str, tuple[int, str]] = {}
    for img in coco['images']:
        where = f'{path}: image {img["id"]}'
        if img['id'] in ids:
            problems.append(f'{where}: image id {img["id"]} appears more than once')
        ids.add(img['id'])
        name = img['file_name']
        stem = Path(name).stem
        if stem in stems:
            other_id, other = stems[stem]
            problems.append(f'{where}: file name {name!r} is also used by image {other_id}'
                            if name == other else
                            f'{where}: file name {name!r} has the stem of {other!r} (image '
                            f'{other_id}); semantic masks are named by stem')
        stems.setdefault(stem, (img['id'], name))
        file = folder / name
        if not file.is_file():
            problems.append(f'{where}: {name!r} not found in {folder}')
            continue
        try:
            with Image.open(file) as im:
                size = im.size
        except OSError as err:
            problems.append(f'{where}: {file} cannot be read as an image ({err})')
            continue
        if size != (img['width'], img['height']):
            problems.append(f'{where}: {name!r} is {size[0]}x{size[1]} pixels but the '
                            f'annotation file says {img["width"]}x{img["height"]} (w x h)')
    return problems


def _category_problems(path: Path, coco: dict) -> list[str]:
    problems = []
    for key in ('id', 'name'):
        values = [c[key] for c in coco['categories']]
        duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
        if duplicates:
            problems.append(f'{path}: category {key}s {duplicates} appear more than once')
    return problems


def _annotation_problem(path: Path, ann: dict, image: dict) -> str | None:
    """The first problem of one annotation's mask, box or area, if any."""
    where = annotation_where(ann)
    try:
        rle = annotation_rle(path, where, ann['segmentation'], image['height'], image['width'])
    except FormatError as err:
        return str(err)
    area = float(mask_utils.area(rle))
    if area == 0:
        return f'{path}: {where}: the mask is empty'
    mask_box = [float(v) for v in mask_utils.toBbox(rle)]
    x, y, w, h = ann['bbox']
    mx, my, mw, mh = mask_box
    if max(abs(x - mx), abs(y - my), abs(x + w - mx - mw), abs(y + h - my - mh)) > BOX_TOLERANCE:
        return f'{path}: {where}: bbox {ann["bbox"]} differs from the mask\'s {mask_box}'
    tolerance = AREA_TOLERANCE
    if isinstance(ann['segmentation'], list):
        tolerance += AREA_TOLERANCE_PER_OUTLINE_PIXEL * polygon_perimeter(ann['segmentation'])
    if abs(ann['area'] - area) > tolerance:
        return (f'{path}: {where}: area {ann["area"]:g} differs from the mask\'s {area:g} '
                f'by more than {tolerance:.1f}')
    return None


def _annotations_problems(path: Path, coco: dict) -> list[str]:
    problems = []
    images = {img['id']: img for img in coco['images']}
    category_ids = {c['id'] for c in coco['categories']}
    ids: set[int] = set()
    for ann in coco['annotations']:
        where = f'{path}: {annotation_where(ann)}'
        if ann['id'] in ids:
            problems.append(f'{where}: annotation id {ann["id"]} appears more than once')
        ids.add(ann['id'])
        if ann['category_id'] not in category_ids:
            problems.append(f'{where}: unknown category id {ann["category_id"]} '
                            f'(categories: {sorted(category_ids)})')
        if ann['image_id'] not in images:
            problems.append(f'{where}: image id {ann["image_id"]} is not in "images"')
            continue
        problem = _annotation_problem(path, ann, images[ann['image_id']])
        if problem is not None:
            problems.append(problem)
    return problems


def split_problems(ann_file: Path, coco: dict, images_folder: Path) -> list[str]:
    """Every problem of one loaded split: image files, ids, names, categories, masks."""
    return (_image_problems(ann_file, coco, images_folder) + _category_problems(ann_file, coco)
            + _annotations_problems(ann_file, coco))


def require_valid_split(data_root: str | Path, dataset: str, split: str) -> dict:
    """Load a split that the converters will rely on; its first problem is an error."""
    ann_file = annotation_path(data_root, dataset, split)
    coco = load_coco(ann_file)
    problems = split_problems(ann_file, coco, image_dir(data_root, dataset, split))
    if problems:
        more = f' (and {len(problems) - 1} more problems)' if len(problems) > 1 else ''
        raise FormatError(f'{problems[0]}{more}; run tools/dataset_converters/vision.py check')
    return coco


def _category_pairs(coco: dict) -> list[tuple[int, str]]:
    return sorted((c['id'], c['name']) for c in coco['categories'])


def _image_entries(coco: dict) -> list[tuple]:
    return sorted((i['id'], i['file_name'], i['width'], i['height']) for i in coco['images'])


def check_dataset(data_root: str | Path,
                  dataset: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """Problems of one dataset (every split, and across splits) and its per-split counts."""
    problems: list[str] = []
    counts: dict[str, tuple[int, int]] = {}
    train_file = annotation_path(data_root, dataset, 'train')
    if not train_file.is_file():
        return [f'{train_file}: file not found (every dataset needs a train split)'], counts
    loaded: dict[str, tuple[Path, dict]] = {}
    for split in SPLITS:
        ann_file = annotation_path(data_root, dataset, split)
        if not ann_file.is_file():
            continue
        try:
            coco = load_coco(ann_file)
        except FormatError as err:
            problems.append(str(err))
            continue
        problems += split_problems(ann_file, coco, image_dir(data_root, dataset, split))
        loaded[split] = ann_file, coco
        counts[split] = len(coco['images']), len(coco['annotations'])
    if not loaded:
        return problems, counts

    reference_split, (reference_file, reference) = next(iter(loaded.items()))
    names = sorted(name for _, name in _category_pairs(reference))
    expected = VISION_CLASSES.get(dataset)
    if expected is not None and names != sorted(expected):
        problems.append(f'{reference_file}: categories {names} do not match the VISION '
                        f'classes of {dataset} {sorted(expected)}')
    for split, (ann_file, coco) in loaded.items():
        if split != reference_split and _category_pairs(coco) != _category_pairs(reference):
            problems.append(f'{ann_file}: categories {_category_pairs(coco)} differ from '
                            f'{_category_pairs(reference)} in {reference_file}')
    if 'inference' in loaded and 'inference_gt' in loaded:
        gt_file, gt = loaded['inference_gt']
        if _image_entries(gt) != _image_entries(loaded['inference'][1]):
            problems.append(f'{gt_file}: images (ids, file names, sizes) differ from those of '
                            f'{loaded["inference"][0]}')
    return problems, counts


def check_data_root(data_root: str | Path, datasets: list[str] | None = None) -> CheckReport:
    """Check ``datasets`` (default: every dataset with a train split) of ``data_root``."""
    report = CheckReport()
    if datasets is None:
        datasets = available_datasets(data_root)
        if not datasets:
            report.problems.append(f'{data_root}: no datasets found (expected '
                                   '<Dataset>/train/_annotations.coco.json)')
    for dataset in datasets:
        problems, counts = check_dataset(data_root, dataset)
        report.problems += problems
        report.counts[dataset] = counts
    return report
