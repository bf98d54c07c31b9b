"""The 14 VISION Challenge datasets and their defect classes.

The annotation files of a dataset are the authority on its classes and category ids
(:func:`dataset_classes`); this registry checks that a file belongs to the VISION dataset
it claims to be. Also the layout of a data root: where each split's files are.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from custom_modules.formats.errors import FormatError

from .annotations import load_coco
from .categories import class_categories, project_category_note

VISION_CLASSES: dict[str, tuple[str, ...]] = {
    'Cable': ('break', 'thunderbolt'),
    'Capacitor': ('0', ),
    'Casting': ('Inclusoes', 'Rechupe'),
    'Console': ('Collision', 'Dirty', 'Gap', 'Scratch'),
    'Cylinder': ('Chip', 'PistonMiss', 'Porosity', 'RCS'),
    'Electronics': ('damage', ),
    'Groove': ('s_burr', 's_scratch'),
    'Hemisphere': ('Defect-A', 'Defect-B', 'Defect-C', 'Defect-D'),
    'Lens': ('Fiber', 'Flash Particle', 'Hole', 'Surface Damage', 'Tear'),
    'PCB_1': ('missing_hole', 'mouse_bite', 'open_circuit', 'short', 'spur',
              'spurious_copper'),
    'PCB_2': tuple(f'defect{i}' for i in range(1, 8)),
    'Ring': ('t_contamination', 't_scratch', 'unfinished_surface'),
    'Screw': ('defect', ),
    'Wood': ('impurities', 'pits'),
}
VISION_DATASETS: tuple[str, ...] = tuple(VISION_CLASSES)
# The splits of the layout; a dataset may have any of them. ``train_val`` is no folder:
# it is train and val read together (see custom_modules/vision/selection.py).
SPLITS: tuple[str, ...] = ('train', 'val', 'inference', 'inference_gt')
TRAIN_VAL = 'train_val'
# The labelled splits a model may learn from, in the order train_val reads them; they
# decide which categories are classes (the hidden inference_gt never does).
LEARNING_SPLITS: tuple[str, ...] = ('train', 'val')
# Roboflow names the validation split's folder ``valid``.
SPLIT_ALIASES: dict[str, str] = {'val': 'valid'}
ANNOTATION_NAME = '_annotations.coco.json'


def split_dir(data_root: str | Path, dataset: str, split: str) -> Path:
    """``<root>/<Dataset>/<split>``, or the split's alias (``valid`` for ``val``) when only
    that folder exists."""
    folder = Path(data_root) / dataset / split
    alias = SPLIT_ALIASES.get(split)
    if alias is not None and not folder.is_dir() and folder.with_name(alias).is_dir():
        return folder.with_name(alias)
    return folder


def annotation_path(data_root: str | Path, dataset: str, split: str) -> Path:
    """``<root>/<Dataset>/<split>/_annotations.coco.json``: the VISION layout."""
    return split_dir(data_root, dataset, split) / ANNOTATION_NAME


def image_dir(data_root: str | Path, dataset: str, split: str) -> Path:
    """Folder holding a split's images; ``inference_gt`` is a json only and shares the
    images of ``inference``."""
    return split_dir(data_root, dataset, 'inference' if split == 'inference_gt' else split)


def available_datasets(data_root: str | Path, split: str = 'train') -> list[str]:
    """Datasets under ``data_root`` that have ``split``, VISION ones first.

    Datasets unknown to the registry (a user's own) are accepted too: their annotation
    files define their classes.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise FormatError(f'{root}: data root does not exist')
    found = sorted(p.name for p in root.iterdir()
                   if annotation_path(root, p.name, split).is_file())
    known = [d for d in VISION_DATASETS if d in found]
    return known + [d for d in found if d not in VISION_CLASSES]


def registry_mismatch(dataset: str, names: Iterable[str]) -> str | None:
    """Why class ``names`` cannot be the VISION dataset ``dataset``'s (``None``: they can,
    or the dataset is a user's own)."""
    expected = VISION_CLASSES.get(dataset)
    if expected is None or sorted(names) == sorted(expected):
        return None
    return (f'categories {sorted(names)} do not match the VISION classes of {dataset} '
            f'{sorted(expected)}')


@dataclass(frozen=True)
class DatasetClasses:
    """A dataset's classes (in category-id order of ``ann_file``, the train split's) and
    Roboflow's project category when it was left out."""
    names: tuple[str, ...]
    ann_file: Path
    project: dict | None = None

    def project_note(self) -> str | None:
        """The line saying the project category was left out (``None``: none was)."""
        if self.project is None:
            return None
        return f'{self.ann_file}: {project_category_note(self.project)}'


def dataset_classes(data_root: str | Path, dataset: str) -> DatasetClasses:
    """The classes of ``dataset``: the train split's categories, less Roboflow's project
    category when no train or val annotation uses it. For a registered VISION dataset
    the names must be the registry's (their order and ids come from the file)."""
    ann_file = annotation_path(data_root, dataset, 'train')
    train = load_coco(ann_file)
    used = {a['category_id'] for a in train['annotations']}
    for split in LEARNING_SPLITS[1:]:
        other = annotation_path(data_root, dataset, split)
        if other.is_file():
            used |= {a['category_id'] for a in load_coco(other)['annotations']}
    categories, project = class_categories(train['categories'], used)
    names = tuple(str(c['name']) for c in categories)
    if len(set(names)) != len(names):
        raise FormatError(f'{ann_file}: duplicate category names {names}')
    mismatch = registry_mismatch(dataset, names)
    if mismatch is not None:
        raise FormatError(f'{ann_file}: {mismatch}')
    return DatasetClasses(names, ann_file, project)
