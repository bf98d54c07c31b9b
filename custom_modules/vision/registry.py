"""The 14 VISION Challenge datasets and their defect classes.

The annotation file of a dataset is the authority on class order and category ids
(:func:`categories_from_annotation`); this registry is the fallback when no file is at
hand and the check that a file belongs to the dataset it claims to be.
"""
from __future__ import annotations

from pathlib import Path

from custom_modules.formats.errors import FormatError
from custom_modules.formats.json_io import load_json

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
SPLITS: tuple[str, ...] = ('train', 'val', 'train_val', 'inference', 'inference_gt')
ANNOTATION_NAME = '_annotations.coco.json'


def annotation_path(data_root: str | Path, dataset: str, split: str) -> Path:
    """``<root>/<Dataset>/<split>/_annotations.coco.json``: the VISION layout."""
    return Path(data_root) / dataset / split / ANNOTATION_NAME


def image_dir(data_root: str | Path, dataset: str, split: str) -> Path:
    """Folder holding a split's images; ``inference_gt`` is a json only and shares the
    images of ``inference``."""
    return Path(data_root) / dataset / ('inference' if split == 'inference_gt' else split)


def semantic_dir(data_root: str | Path, dataset: str, split: str) -> Path:
    """``<root>/<Dataset>/semantic/<split>``: binary defect masks, one PNG per image."""
    return Path(data_root) / dataset / 'semantic' / split


def available_datasets(data_root: str | Path) -> list[str]:
    """Datasets under ``data_root`` that have a train split, VISION ones first.

    Datasets unknown to the registry (a user's own) are accepted too: their annotation
    files define their classes.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise FormatError(f'{root}: data root does not exist')
    found = sorted(p.parent.parent.name for p in root.glob(f'*/train/{ANNOTATION_NAME}'))
    known = [d for d in VISION_DATASETS if d in found]
    return known + [d for d in found if d not in VISION_CLASSES]


def categories_from_annotation(ann_file: str | Path) -> list[dict]:
    """The ``categories`` of a COCO annotation file, sorted by id."""
    data = load_json(ann_file)
    if not isinstance(data, dict) or not isinstance(data.get('categories'), list):
        raise FormatError(f'{ann_file}: no "categories" list')
    return sorted(data['categories'], key=lambda c: c['id'])


def dataset_classes(dataset: str, ann_file: str | Path | None = None) -> tuple[str, ...]:
    """Class names of ``dataset`` in category-id order.

    Taken from ``ann_file`` when given; for a registered VISION dataset the names must
    then match the registry's (order may differ, ids come from the file).
    """
    if ann_file is None:
        if dataset not in VISION_CLASSES:
            raise FormatError(f'unknown dataset {dataset!r}: not one of {", ".join(VISION_DATASETS)} '
                              'and no annotation file given')
        return VISION_CLASSES[dataset]
    names = tuple(str(c['name']) for c in categories_from_annotation(ann_file))
    if len(set(names)) != len(names):
        raise FormatError(f'{ann_file}: duplicate category names {names}')
    expected = VISION_CLASSES.get(dataset)
    if expected is not None and set(names) != set(expected):
        raise FormatError(f'{ann_file}: categories {sorted(names)} do not match the VISION '
                          f'classes of {dataset} {sorted(expected)}')
    return names
