"""The VISION dataset registry, the layout helpers and a dataset's classes."""
from __future__ import annotations

import json

import pytest

from custom_modules.formats import FormatError
from custom_modules.vision import (VISION_CLASSES, VISION_DATASETS, annotation_path,
                                   available_datasets, dataset_classes, image_dir, split_dir)
from custom_modules.vision.categories import is_project_category

ANN = '_annotations.coco.json'


def test_fourteen_datasets_and_44_classes():
    assert len(VISION_DATASETS) == 14
    assert sum(len(classes) for classes in VISION_CLASSES.values()) == 44
    assert VISION_CLASSES['Capacitor'] == ('0', )
    assert VISION_CLASSES['PCB_2'] == tuple(f'defect{i}' for i in range(1, 8))


def _write_split(root, dataset, split, categories, category_ids=()):
    path = root / dataset / split / ANN
    path.parent.mkdir(parents=True, exist_ok=True)
    annotations = [dict(id=i + 1, image_id=1, category_id=c, segmentation=[[0, 0, 4, 0, 4, 4]],
                        bbox=[0, 0, 4, 4], area=8, iscrowd=0)
                   for i, c in enumerate(category_ids)]
    path.write_text(json.dumps({'images': [dict(id=1, file_name='a.jpg', width=8, height=8)],
                                'annotations': annotations, 'categories': categories}))
    return path


def _roboflow_categories(project, names, first_id=1):
    return [dict(id=0, name=project, supercategory='none')] + [
        dict(id=first_id + i, name=n, supercategory=project) for i, n in enumerate(names)]


def test_dataset_classes_follow_the_file_ids(tmp_path):
    path = _write_split(tmp_path, 'Cable', 'train', [{'id': 4, 'name': 'thunderbolt'},
                                                     {'id': 2, 'name': 'break'}], [2, 4])
    found = dataset_classes(tmp_path, 'Cable')
    assert (found.names, found.ann_file, found.project) == (('break', 'thunderbolt'), path, None)
    assert found.project_note() is None
    _write_split(tmp_path, 'MyParts', 'train', [{'id': 1, 'name': 'crack'}])
    assert dataset_classes(tmp_path, 'MyParts').names == ('crack', )  # unused: still a class


def test_roboflow_project_category_is_not_a_class(tmp_path):
    """Roboflow's id-0 category is left out, with one line saying so; the registry check
    of a VISION dataset accepts it."""
    categories = _roboflow_categories('cable-defects', ['thunderbolt', 'break'])
    path = _write_split(tmp_path, 'Cable', 'train', categories, [1])
    _write_split(tmp_path, 'Cable', 'val', categories, [2])
    found = dataset_classes(tmp_path, 'Cable')
    assert found.names == ('thunderbolt', 'break')  # id order
    assert found.project == categories[0]
    assert found.project_note() == (
        f"{path}: category 0 'cable-defects' is Roboflow's project category (supercategory "
        '"none", no annotations): not a class')


@pytest.mark.parametrize('change', ['used in val', 'not id 0', 'supercategory', 'not the parent'])
def test_a_category_that_is_not_exactly_the_project_category_stays_a_class(tmp_path, change):
    categories = _roboflow_categories('parts', ['crack'])
    used = [1]
    if change == 'not id 0':
        categories[0]['id'] = 7
    elif change == 'supercategory':
        categories[0]['supercategory'] = 'parts'
    elif change == 'not the parent':
        categories[1]['supercategory'] = 'defect'
    _write_split(tmp_path, 'MyParts', 'train', categories, used)
    _write_split(tmp_path, 'MyParts', 'val', categories, [categories[0]['id']]
                 if change == 'used in val' else [1])
    found = dataset_classes(tmp_path, 'MyParts')
    assert found.project is None and set(found.names) == {'parts', 'crack'}
    assert is_project_category(categories[0], categories) == (change == 'used in val')


def test_dataset_classes_errors(tmp_path):
    path = _write_split(tmp_path, 'Cable', 'train', _roboflow_categories('p', ['break', 'spark']))
    with pytest.raises(FormatError, match=rf"^{path}: categories \['break', 'spark'\] do not "
                       'match the VISION classes of Cable'):
        dataset_classes(tmp_path, 'Cable')
    path = _write_split(tmp_path, 'Mine', 'train', [{'id': 1, 'name': 'a'}, {'id': 2, 'name': 'a'}])
    with pytest.raises(FormatError, match=rf'^{path}: duplicate category names'):
        dataset_classes(tmp_path, 'Mine')
    with pytest.raises(FormatError, match='file not found'):
        dataset_classes(tmp_path, 'Nowhere')


def test_layout_paths(tmp_path):
    assert annotation_path(tmp_path, 'Wood', 'val') == tmp_path / 'Wood/val' / ANN
    assert image_dir(tmp_path, 'Wood', 'inference_gt') == tmp_path / 'Wood/inference'
    for dataset in ('Zinc', 'Wood', 'Cable'):
        (tmp_path / dataset / 'train').mkdir(parents=True)
        (tmp_path / dataset / 'train' / ANN).write_text('{}')
    (tmp_path / 'Screw' / 'val').mkdir(parents=True)
    (tmp_path / 'Screw' / 'val' / ANN).write_text('{}')
    assert available_datasets(tmp_path) == ['Cable', 'Wood', 'Zinc']  # VISION ones first
    assert available_datasets(tmp_path, 'val') == ['Screw']
    (tmp_path / 'notes.txt').write_text('')
    assert available_datasets(tmp_path, 'inference') == []


def test_roboflow_valid_folder_is_the_val_split(tmp_path):
    (tmp_path / 'Mine' / 'valid').mkdir(parents=True)
    assert split_dir(tmp_path, 'Mine', 'val') == tmp_path / 'Mine' / 'valid'
    assert annotation_path(tmp_path, 'Mine', 'val') == tmp_path / 'Mine' / 'valid' / ANN
    assert image_dir(tmp_path, 'Mine', 'val') == tmp_path / 'Mine' / 'valid'
    (tmp_path / 'Mine' / 'val').mkdir()
    assert split_dir(tmp_path, 'Mine', 'val') == tmp_path / 'Mine' / 'val'  # val/ wins
    assert split_dir(tmp_path, 'Mine', 'valid') == tmp_path / 'Mine' / 'valid'
