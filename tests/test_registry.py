"""The VISION dataset registry and the data layout helpers."""
from __future__ import annotations

import json

import pytest

from custom_modules.formats import FormatError
from custom_modules.vision import (VISION_CLASSES, VISION_DATASETS, annotation_path,
                                   available_datasets, dataset_classes, image_dir,
                                   semantic_dir)


def test_fourteen_datasets_and_44_classes():
    assert len(VISION_DATASETS) == 14
    assert sum(len(classes) for classes in VISION_CLASSES.values()) == 44
    assert VISION_CLASSES['Capacitor'] == ('0', )
    assert VISION_CLASSES['PCB_2'] == tuple(f'defect{i}' for i in range(1, 8))
    assert dataset_classes('Capacitor') == ('0', )


def _write_categories(tmp_path, categories):
    path = tmp_path / 'ann.json'
    path.write_text(json.dumps({'images': [], 'annotations': [], 'categories': categories}))
    return path


def test_dataset_classes_follow_the_file_ids(tmp_path):
    path = _write_categories(tmp_path, [{'id': 4, 'name': 'thunderbolt'},
                                        {'id': 2, 'name': 'break'}])
    assert dataset_classes('Cable', path) == ('break', 'thunderbolt')
    own = _write_categories(tmp_path, [{'id': 1, 'name': 'crack'}])
    assert dataset_classes('MyParts', own) == ('crack', )


def test_dataset_classes_errors(tmp_path):
    path = _write_categories(tmp_path, [{'id': 1, 'name': 'break'}, {'id': 2, 'name': 'spark'}])
    with pytest.raises(FormatError, match=rf'^{path}: categories .* do not match .* Cable'):
        dataset_classes('Cable', path)
    with pytest.raises(FormatError, match='unknown dataset'):
        dataset_classes('MyParts')


def test_layout_paths(tmp_path):
    assert annotation_path(tmp_path, 'Wood', 'val') == tmp_path / 'Wood/val/_annotations.coco.json'
    assert image_dir(tmp_path, 'Wood', 'inference_gt') == tmp_path / 'Wood/inference'
    assert image_dir(tmp_path, 'Wood', 'train_val') == tmp_path / 'Wood/train_val'
    assert semantic_dir(tmp_path, 'Wood', 'inference_gt') == tmp_path / 'Wood/semantic/inference_gt'
    for dataset in ('Zinc', 'Wood', 'Cable'):
        (tmp_path / dataset / 'train').mkdir(parents=True)
        (tmp_path / dataset / 'train' / '_annotations.coco.json').write_text('{}')
    (tmp_path / 'Screw' / 'val').mkdir(parents=True)  # no train split: not a dataset
    assert available_datasets(tmp_path) == ['Cable', 'Wood', 'Zinc']
