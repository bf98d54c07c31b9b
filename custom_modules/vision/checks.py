"""Validation of a VISION-layout data root: every problem found, each an error or a warning.

Errors break training, prediction or scoring (a missing image, a polygon outside its
image, an unknown id, splits whose categories disagree). Warnings are what real exports
carry and what MMDetection and COCO evaluation cope with (a rounded box, a box area stored
as ``area``, a category no annotation uses). Each problem names the annotation file it
was found in, so a user can fix the data before hours of training fail on it;
:func:`require_valid_split` gives the converters the same guarantees as a hard error.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from pycocotools import mask as mask_utils

from custom_modules.formats import FormatError

from .annotations import annotation_rle, annotation_where, load_coco, polygon_perimeter
from .categories import class_categories, project_category_note
from .registry import (LEARNING_SPLITS, SPLIT_ALIASES, SPLITS, annotation_path,
                       available_datasets, image_dir, registry_mismatch)

# A box may differ from the mask's tight box by this much per side (polygon rasterisation).
BOX_TOLERANCE = 1.0
# A polygon's area may differ from its rasterised area by half a pixel along its outline.
AREA_TOLERANCE_PER_OUTLINE_PIXEL = 0.5
AREA_TOLERANCE = 1.0
# Problems of a kind shown per file in the summary (``--verbose`` shows all).
EXAMPLES_PER_FILE = 3

ERROR, WARNING = 'error', 'warning'
# kind -> (severity, what it does downstream), in the order the summary lists them.
KINDS: dict[str, tuple[str, str]] = {
    'unreadable annotation file': (ERROR, 'no stage can read the split'),
    'missing split': (ERROR, 'every dataset needs a train split'),
    'ambiguous split folder': (ERROR, 'both val/ and valid/ exist: which is the val split?'),
    'missing image': (ERROR, 'training and prediction stop at it'),
    'unreadable image': (ERROR, 'training and prediction stop at it'),
    'image size': (ERROR, 'masks and predictions are made at the size the file says'),
    'duplicate image id': (ERROR, 'annotations and predictions are matched to images by id'),
    'duplicate file name': (ERROR, 'one image file listed twice'),
    'duplicate annotation id': (ERROR, 'MMDetection refuses the file'),
    'unknown image id': (ERROR, 'the annotation belongs to no image'),
    'unknown category id': (ERROR, 'the annotation belongs to no category'),
    'bad segmentation': (ERROR, 'no mask can be made of it'),
    'duplicate category': (ERROR, 'classes are matched to category ids by name'),
    'categories differ between splits': (ERROR, 'a class would change its id between splits'),
    'not the VISION classes': (ERROR, 'the file is not the dataset it claims to be'),
    'inference_gt images differ': (ERROR, 'predictions of inference cannot be scored on it'),
    'bbox differs from the mask': (WARNING, 'training boxes are recomputed from the masks '
                                   "(RandomCrop); COCO's bbox scores use the file's bbox"),
    'area differs from the mask': (WARNING, "COCO's small / medium / large ranges use the "
                                   "file's area"),
    'box or area below 1 px': (WARNING, "MMDetection's CocoDataset leaves the annotation out "
                               "of the instance models' training"),
    'empty mask': (WARNING, 'training drops it; scoring counts it as a missed object'),
    'image without annotations': (WARNING, 'instance training skips it (filter_empty_gt); '
                                  'scoring counts any detection on it as false'),
    'unused category': (WARNING, 'a class the model never sees an example of'),
    'project category': (WARNING, "Roboflow's project category: left out of the classes"),
    'file name stems clash': (WARNING, 'the semantic export names masks by image stem and '
                              'refuses the split'),
}


@dataclass(frozen=True)
class Problem:
    """One problem of one file: its kind (a key of :data:`KINDS`) and what was found."""
    kind: str
    file: Path
    message: str

    @property
    def severity(self) -> str:
        return KINDS[self.kind][0]

    def __str__(self) -> str:
        return f'{self.file}: {self.message}'


@dataclass
class CheckReport:
    """Problems found and ``dataset -> split -> (images, annotations)``."""
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def count_lines(self) -> list[str]:
        """One line per dataset: images and annotations of each split."""
        return [
            f'{dataset}: ' + ', '.join(f'{split} {n_img} images / {n_ann} annotations'
                                       for split, (n_img, n_ann) in splits.items())
            for dataset, splits in self.counts.items()
        ]

    def problem_lines(self) -> list[str]:
        """Every problem on its own line, errors first."""
        return [f'{p.severity}: {p}' for p in self.errors + self.warnings]

    def summary_lines(self) -> list[str]:
        """Per kind of problem: its count, what it does, and per file a count and the first
        few examples; then the totals."""
        by_kind: dict[str, dict[Path, list[Problem]]] = defaultdict(lambda: defaultdict(list))
        for problem in self.problems:
            by_kind[problem.kind][problem.file].append(problem)
        lines = []
        for kind in sorted(by_kind, key=list(KINDS).index):
            severity, effect = KINDS[kind]
            files = by_kind[kind]
            total = sum(map(len, files.values()))
            lines.append(f'{severity}: {kind} ({total} in {len(files)} file'
                         f'{"s" if len(files) > 1 else ""}): {effect}')
            for file, found in files.items():
                lines.append(f'  {file}: {len(found)}')
                lines += [f'    {p.message}' for p in found[:EXAMPLES_PER_FILE]]
                if len(found) > EXAMPLES_PER_FILE:
                    lines.append(f'    ... and {len(found) - EXAMPLES_PER_FILE} more')
        more = ' (--verbose lists every one)' if self.problems else ''
        return lines + [self.totals_line() + more]

    def totals_line(self) -> str:
        errors, warnings = len(self.errors), len(self.warnings)
        verdict = ('fix the errors before training' if errors else
                   'nothing stops training, prediction or scoring')
        return (f'{errors} error{"s" * (errors != 1)}, {warnings} warning'
                f'{"s" * (warnings != 1)}: {verdict}')


class _Found:
    """Collects the problems of one annotation file."""

    def __init__(self, file: Path):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, self.file, message))


def _check_images(found: _Found, coco: dict, folder: Path) -> None:
    ids: set[int] = set()
    stems: dict[str, tuple[int, str]] = {}
    for img in coco['images']:
        where = f'image {img["id"]}'
        if img['id'] in ids:
            found.add('duplicate image id', f'{where}: image id {img["id"]} appears more '
                      'than once')
        ids.add(img['id'])
        name = img['file_name']
        stem = Path(name).stem
        if stem in stems:
            other_id, other = stems[stem]
            if name == other:
                found.add('duplicate file name', f'{where}: file name {name!r} is also used '
                          f'by image {other_id}')
            else:
                found.add('file name stems clash', f'{where}: file name {name!r} has the '
                          f'stem of {other!r} (image {other_id})')
        stems.setdefault(stem, (img['id'], name))
        file = folder / name
        if not file.is_file():
            found.add('missing image', f'{where}: {name!r} not found in {folder}')
            continue
        try:
            with Image.open(file) as im:
                size = im.size
        except OSError as err:
            found.add('unreadable image', f'{where}: {file} cannot be read as an image ({err})')
            continue
        if size != (img['width'], img['height']):
            found.add('image size', f'{where}: {name!r} is {size[0]}x{size[1]} pixels but the '
                      f'annotation file says {img["width"]}x{img["height"]} (w x h)')


def _check_categories(found: _Found, coco: dict) -> None:
    for key in ('id', 'name'):
        values = [c[key] for c in coco['categories']]
        duplicates = sorted({v for v in values if values.count(v) > 1}, key=str)
        if duplicates:
            found.add('duplicate category', f'category {key}s {duplicates} appear more than '
                      'once')


def _check_annotation(found: _Found, ann: dict, image: dict) -> None:
    """The mask, box and area of one annotation."""
    where = annotation_where(ann)
    try:
        rle = annotation_rle(found.file, where, ann['segmentation'], image['height'],
                             image['width'])
    except FormatError as err:
        found.add('bad segmentation', str(err).removeprefix(f'{found.file}: '))
        return
    x, y, w, h = ann['bbox']
    inside_w = min(x + w, image['width']) - max(x, 0)
    inside_h = min(y + h, image['height']) - max(y, 0)
    if ann['area'] <= 0 or w < 1 or h < 1 or inside_w <= 0 or inside_h <= 0:
        found.add('box or area below 1 px', f'{where}: bbox {ann["bbox"]}, area '
                  f'{ann["area"]:g} (inside the image: {max(inside_w, 0):g} x '
                  f'{max(inside_h, 0):g})')
    area = float(mask_utils.area(rle))
    if area == 0:
        found.add('empty mask', f'{where}: the mask has no pixel')
        return
    mask_box = [float(v) for v in mask_utils.toBbox(rle)]
    mx, my, mw, mh = mask_box
    if max(abs(x - mx), abs(y - my), abs(x + w - mx - mw), abs(y + h - my - mh)) > BOX_TOLERANCE:
        found.add('bbox differs from the mask',
                  f'{where}: bbox {ann["bbox"]} differs from the mask\'s {mask_box}')
    tolerance = AREA_TOLERANCE
    if isinstance(ann['segmentation'], list):
        tolerance += AREA_TOLERANCE_PER_OUTLINE_PIXEL * polygon_perimeter(ann['segmentation'])
    if abs(ann['area'] - area) > tolerance:
        found.add('area differs from the mask', f'{where}: area {ann["area"]:g} differs from '
                  f'the mask\'s {area:g} by more than {tolerance:.1f}')


def _check_annotations(found: _Found, coco: dict, labelled: bool) -> None:
    images = {img['id']: img for img in coco['images']}
    category_ids = {c['id'] for c in coco['categories']}
    ids: set[int] = set()
    annotated: set[int] = set()
    for ann in coco['annotations']:
        where = annotation_where(ann)
        if ann['id'] in ids:
            found.add('duplicate annotation id', f'{where}: annotation id {ann["id"]} appears '
                      'more than once')
        ids.add(ann['id'])
        if ann['category_id'] not in category_ids:
            found.add('unknown category id', f'{where}: unknown category id '
                      f'{ann["category_id"]} (categories: {sorted(category_ids)})')
        if ann['image_id'] not in images:
            found.add('unknown image id', f'{where}: image id {ann["image_id"]} is not in '
                      '"images"')
            continue
        annotated.add(ann['image_id'])
        _check_annotation(found, ann, images[ann['image_id']])
    if labelled:
        for img in coco['images']:
            if img['id'] not in annotated:
                found.add('image without annotations', f'image {img["id"]} '
                          f'({img["file_name"]!r}) has no annotations')


def split_problems(ann_file: Path, coco: dict, images_folder: Path,
                   labelled: bool = True) -> list[Problem]:
    """Every problem of one loaded split: image files, ids, names, categories, masks.
    ``labelled``: whether an image without annotations is worth a warning (not in the
    unlabelled inference split)."""
    found = _Found(ann_file)
    _check_images(found, coco, images_folder)
    _check_categories(found, coco)
    _check_annotations(found, coco, labelled)
    return found.problems


def require_valid_split(data_root: str | Path, dataset: str, split: str) -> dict:
    """Load a split that the converters will rely on; its first error is raised
    (warnings are not)."""
    ann_file = annotation_path(data_root, dataset, split)
    coco = load_coco(ann_file)
    errors = [p for p in split_problems(ann_file, coco, image_dir(data_root, dataset, split))
              if p.severity == ERROR]
    if errors:
        more = f' (and {len(errors) - 1} more errors)' if len(errors) > 1 else ''
        raise FormatError(f'{errors[0]}{more}; run tools/dataset_converters/vision.py check')
    return coco


def _category_pairs(coco: dict) -> list[tuple[int, str]]:
    return sorted((c['id'], c['name']) for c in coco['categories'])


def _image_entries(coco: dict) -> list[tuple]:
    return sorted((i['id'], i['file_name'], i['width'], i['height']) for i in coco['images'])


def _class_problems(dataset: str, loaded: dict[str, tuple[Path, dict]]) -> list[Problem]:
    """Across the splits: the same categories everywhere, the classes the registry
    expects, and the categories no annotation a model learns from uses."""
    problems = []
    reference_split, (reference_file, reference) = next(iter(loaded.items()))
    for split, (ann_file, coco) in loaded.items():
        if split != reference_split and _category_pairs(coco) != _category_pairs(reference):
            problems.append(Problem('categories differ between splits', ann_file,
                                    f'categories {_category_pairs(coco)} differ from '
                                    f'{_category_pairs(reference)} in {reference_file}'))
    used = {a['category_id'] for split in LEARNING_SPLITS if split in loaded
            for a in loaded[split][1]['annotations']}
    classes, project = class_categories(reference['categories'], used)
    if project is not None:
        problems.append(Problem('project category', reference_file,
                                project_category_note(project)))
    mismatch = registry_mismatch(dataset, [c['name'] for c in classes])
    if mismatch is not None:
        problems.append(Problem('not the VISION classes', reference_file, mismatch))
    for category in classes:
        if category['id'] not in used:
            problems.append(Problem('unused category', reference_file,
                                    f'category {category["id"]} {category["name"]!r}: no '
                                    f'annotation of {" or ".join(LEARNING_SPLITS)} uses it'))
    return problems


def check_dataset(data_root: str | Path,
                  dataset: str) -> tuple[list[Problem], dict[str, tuple[int, int]]]:
    """Problems of one dataset (every split, and across splits) and its per-split counts."""
    problems: list[Problem] = []
    counts: dict[str, tuple[int, int]] = {}
    for split, alias in SPLIT_ALIASES.items():
        folders = [Path(data_root) / dataset / name for name in (split, alias)]
        if all(folder.is_dir() for folder in folders):
            problems.append(Problem('ambiguous split folder', folders[1],
                                    f'both {folders[0].name}/ and {folders[1].name}/ exist; '
                                    f'{folders[0].name}/ is used'))
    train_file = annotation_path(data_root, dataset, 'train')
    if not train_file.is_file():
        return problems + [Problem('missing split', train_file, 'file not found')], counts
    loaded: dict[str, tuple[Path, dict]] = {}
    for split in SPLITS:
        ann_file = annotation_path(data_root, dataset, split)
        if not ann_file.is_file():
            continue
        try:
            coco = load_coco(ann_file)
        except FormatError as err:
            problems.append(Problem('unreadable annotation file', ann_file,
                                    str(err).removeprefix(f'{ann_file}: ')))
            continue
        problems += split_problems(ann_file, coco, image_dir(data_root, dataset, split),
                                   labelled=split != 'inference')
        loaded[split] = ann_file, coco
        counts[split] = len(coco['images']), len(coco['annotations'])
    if not loaded:
        return problems, counts
    problems += _class_problems(dataset, loaded)
    if 'inference' in loaded and 'inference_gt' in loaded:
        gt_file, gt = loaded['inference_gt']
        if _image_entries(gt) != _image_entries(loaded['inference'][1]):
            problems.append(Problem('inference_gt images differ', gt_file,
                                    'images (ids, file names, sizes) differ from those of '
                                    f'{loaded["inference"][0]}'))
    return problems, counts


def check_data_root(data_root: str | Path, datasets: list[str] | None = None) -> CheckReport:
    """Check ``datasets`` (default: every dataset with a train split) of ``data_root``."""
    report = CheckReport()
    if datasets is None:
        datasets = available_datasets(data_root)
        if not datasets:
            report.problems.append(Problem('missing split', Path(data_root),
                                           'no datasets found (expected '
                                           '<Dataset>/train/_annotations.coco.json)'))
    for dataset in datasets:
        problems, counts = check_dataset(data_root, dataset)
        report.problems += problems
        report.counts[dataset] = counts
    return report

