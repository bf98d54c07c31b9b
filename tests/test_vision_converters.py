"""tools/dataset_converters/vision.py: check, merge and semantic on hand-made data roots."""
from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from coco_builders import (CATEGORIES, SPLIT_IMAGES, annotation, build_root, load_ann,
                           call_tool, rectangle, run_tool, write_image, write_json)
from PIL import Image
from pycocotools.coco import COCO

from custom_modules.formats import FormatError
from custom_modules.vision.checks import check_data_root
from custom_modules.vision.merge import merge_train_val
from custom_modules.vision.semantic_masks import write_all_semantic_masks

ANN = '_annotations.coco.json'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_root(tmp_path / 'data')


def edit_json(root: Path, dataset: str, split: str, edit) -> Path:
    path = root / dataset / split / ANN
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))
    return path


def coco_api(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


# --------------------------------------------------------------------------- check

def test_check_passes_a_clean_root_and_counts_every_split(root):
    report = check_data_root(root)
    assert report.problems == []
    for dataset in CATEGORIES:
        expected = {}
        for split in ('train', 'val', 'inference', 'inference_gt'):
            coco = load_ann(root, dataset, split)
            expected[split] = len(coco['images']), len(coco['annotations'])
        assert report.counts[dataset] == expected
        assert expected['inference'][1] == 0 and expected['inference_gt'][1] > 0
    lines = report.summary_lines()
    assert len(lines) == 2 and lines[0].startswith('Cable: train 3 images / ')


def _set(key, value, index=0, kind='annotations'):
    def edit(coco):
        coco[kind][index][key] = value
    return edit


def _shift_bbox(coco):
    coco['annotations'][0]['bbox'][0] += 3


def _triple_area(coco):
    coco['annotations'][0]['area'] *= 3


def _polygon_outside(coco):
    width = coco['images'][0]['width']
    coco['annotations'][0]['segmentation'] = [rectangle(width - 4, 2, 12, 5)]


def _odd_polygon(coco):
    coco['annotations'][0]['segmentation'] = [[1.0, 1.0, 5.0, 1.0, 5.0]]


def _bad_rle(coco):
    coco['annotations'][0]['segmentation'] = {'size': [3, 3], 'counts': '00'}


def _rename_category(coco):
    coco['categories'][0]['name'] = 'renamed'


def _duplicate_stem(coco):
    coco['images'][1]['file_name'] = 'img_0.png'


PLANTED = {
    # name: (dataset, split, edit, words in the problem line)
    'duplicate image id': ('Widget', 'val', _set('id', 1, 1, 'images'), 'image id 1 appears'),
    'duplicate file name': ('Cable', 'train', _set('file_name', 'img_0.jpg', 1, 'images'),
                            "'img_0.jpg' is also used by image 1"),
    'duplicate stem': ('Cable', 'train', _duplicate_stem, 'has the stem of'),
    'image size': ('Cable', 'val', _set('width', 47, 0, 'images'),
                   "'img_0.jpg' is 48x36 pixels but the annotation file says 47x36"),
    'duplicate annotation id': ('Cable', 'train', _set('id', 1, 1), 'annotation id 1 appears'),
    'category mismatch': ('Widget', 'val', _rename_category, 'differ from'),
    'polygon outside image': ('Cable', 'train', _polygon_outside, 'outside the 48x36 image'),
    'odd polygon': ('Cable', 'val', _odd_polygon, 'even number of coordinates'),
    'bad RLE': ('Widget', 'inference_gt', _bad_rle, 'RLE'),
    'bad bbox': ('Cable', 'train', _shift_bbox, "differs from the mask's"),
    'bad area': ('Widget', 'train', _triple_area, "area"),
    'unknown image': ('Cable', 'val', _set('image_id', 99), 'image id 99 is not in'),
    'unknown category': ('Widget', 'train', _set('category_id', 4), 'unknown category id 4'),
    'missing iscrowd': ('Cable', 'train', lambda c: c['annotations'][0].pop('iscrowd'),
                        'missing "iscrowd"'),
}


@pytest.mark.parametrize('name', PLANTED)
def test_check_reports_each_planted_problem_naming_the_file(root, name):
    dataset, split, edit, words = PLANTED[name]
    path = edit_json(root, dataset, split, edit)
    problems = check_data_root(root).problems
    assert [p for p in problems if p.startswith(f'{path}: ') and words in p], problems
    assert all(p.startswith(str(root)) for p in problems)


def test_check_reports_missing_image_and_registry_mismatch(root):
    (root / 'Cable' / 'train' / 'img_1.jpg').unlink()
    for split in ('train', 'val', 'inference', 'inference_gt'):
        edit_json(root, 'Cable', split, lambda c: c['categories'][1].update(name='spark'))
    problems = check_data_root(root).problems
    train = root / 'Cable' / 'train' / ANN
    assert problems == [
        f"{train}: image 2: 'img_1.jpg' not found in {root / 'Cable' / 'train'}",
        f"{train}: categories ['break', 'spark'] do not match the VISION classes of Cable "
        "['break', 'thunderbolt']",
    ]


def test_check_reports_malformed_json_and_inference_gt_image_mismatch(root):
    (root / 'Widget' / 'val' / ANN).write_text('{"images": [')
    gt = edit_json(root, 'Cable', 'inference_gt', _set('file_name', 'test_1.jpg', 1, 'images'))
    problems = check_data_root(root, ['Cable', 'Widget']).problems
    assert any(p.startswith(f'{root / "Widget" / "val" / ANN}: malformed JSON') for p in problems)
    assert any(p.startswith(f'{gt}: images (ids, file names, sizes) differ') for p in problems)
    # inference_gt reads its images from inference/: the renamed one is missing there
    assert any(p.startswith(f"{gt}: image 2: 'test_1.jpg' not found in "
                            f"{root / 'Cable' / 'inference'}") for p in problems)


def test_check_cli_exit_codes(root, capsys):
    assert call_tool('dataset_converters/vision.py', 'check', root) == 0
    assert capsys.readouterr().out.splitlines() == check_data_root(root).summary_lines()
    path = edit_json(root, 'Cable', 'train', _shift_bbox)
    # as a user runs it: problems on stdout, exit status 1
    bad = run_tool('dataset_converters/vision.py', 'check', root, '--datasets', 'Cable')
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == check_data_root(root, ['Cable']).problems
    assert bad.stdout.startswith(f'{path}: annotation 1 (image 1): bbox [')


def test_merge_and_semantic_cli_errors(root, capsys):
    assert call_tool('dataset_converters/vision.py', 'merge', root, '--datasets', 'Ring') == 1
    assert capsys.readouterr().err == (f'error: {root / "Ring" / "train" / ANN}: '
                                       'file not found\n')
    assert call_tool('dataset_converters/vision.py', 'semantic', root / 'nowhere') == 1
    assert capsys.readouterr().err == f'error: {root / "nowhere"}: data root does not exist\n'


# --------------------------------------------------------------------------- merge

def _annotation_fingerprints(split_dir: Path) -> Counter:
    """(image file content, category, mask) of every annotation, independent of ids/names."""
    coco = coco_api(split_dir / ANN)
    images = {i['id']: (split_dir / i['file_name']).read_bytes() for i in coco.dataset['images']}
    return Counter((images[a['image_id']], a['category_id'], coco.annToMask(a).tobytes())
                   for a in coco.dataset['annotations'])


def test_merge_keeps_every_annotation_with_unique_ids_and_names(root):
    out = merge_train_val(root, 'Widget')
    assert out == root / 'Widget' / 'train_val'
    merged = load_ann(root, 'Widget', 'train_val')
    train, val = load_ann(root, 'Widget', 'train'), load_ann(root, 'Widget', 'val')
    assert merged['categories'] == train['categories']
    images, anns = merged['images'], merged['annotations']
    assert len(images) == len(train['images']) + len(val['images'])
    assert len(anns) == len(train['annotations']) + len(val['annotations'])
    assert len({i['id'] for i in images}) == len(images)
    assert len({a['id'] for a in anns}) == len(anns)
    stems = [Path(i['file_name']).stem for i in images]
    assert len(set(stems)) == len(stems)
    # val's img_0.jpg clashes with train's, and so does the plain prefix (val_img_0.jpg)
    assert sorted(i['file_name'] for i in images) == sorted(
        ['img_0.jpg', 'img_1.jpg', 'val_img_0.jpg', 'val2_img_0.jpg', 'val_img_1.png'])
    assert _annotation_fingerprints(out) == (_annotation_fingerprints(root / 'Widget' / 'train')
                                             + _annotation_fingerprints(root / 'Widget' / 'val'))
    linked = os.stat(out / 'img_1.jpg')
    assert linked.st_ino == os.stat(root / 'Widget' / 'train' / 'img_1.jpg').st_ino
    assert check_data_root(root, ['Widget']).problems == []


def test_merge_replaces_an_earlier_result_without_leftovers(root):
    merge_train_val(root, 'Cable')
    (root / 'Cable' / 'train_val' / 'stale.jpg').write_bytes(b'x')
    merge_train_val(root, 'Cable')
    assert not (root / 'Cable' / 'train_val' / 'stale.jpg').exists()
    assert sorted(p.name for p in (root / 'Cable').iterdir()) == [
        'inference', 'inference_gt', 'train', 'train_val', 'val']


def test_merge_refuses_different_categories_and_invalid_splits(root):
    edit_json(root, 'Widget', 'val', _rename_category)
    with pytest.raises(FormatError, match=r'Widget/val/_annotations\.coco\.json: categories'):
        merge_train_val(root, 'Widget')
    path = edit_json(root, 'Cable', 'train', _set('image_id', 42))
    with pytest.raises(FormatError) as err:
        merge_train_val(root, 'Cable')
    assert str(err.value).startswith(f'{path}: annotation 1 (image 42): image id 42 is not in')
    assert not (root / 'Cable' / 'train_val').exists()


# --------------------------------------------------------------------------- semantic

def test_semantic_masks_are_the_union_of_instance_masks(root):
    merge_train_val(root, 'Widget')
    folders = write_all_semantic_masks(root, ['Widget'])
    splits = ('train', 'val', 'train_val', 'inference_gt')
    assert folders == [root / 'Widget' / 'semantic' / s for s in splits]
    empty_seen = False
    for split in splits:
        coco = coco_api(root / 'Widget' / split / ANN)
        images = coco.dataset['images']
        assert sorted(p.name for p in folders[splits.index(split)].iterdir()) == sorted(
            f'{Path(i["file_name"]).stem}.png' for i in images)
        for img in images:
            expected = np.zeros((img['height'], img['width']), dtype=np.uint8)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img['id']])):
                expected = np.maximum(expected, coco.annToMask(ann))
            png = Image.open(root / 'Widget' / 'semantic' / split
                             / f'{Path(img["file_name"]).stem}.png')
            assert png.mode == 'L'
            np.testing.assert_array_equal(np.asarray(png), expected)
            empty_seen |= not expected.any()
    assert empty_seen  # Widget's second train image has no annotation


def test_semantic_splits_option_and_unlabelled_split(root):
    assert write_all_semantic_masks(root, ['Cable'], ['val']) == [
        root / 'Cable' / 'semantic' / 'val']
    assert not (root / 'Cable' / 'semantic' / 'train').exists()
    with pytest.raises(FormatError, match='has no labels'):
        write_all_semantic_masks(root, ['Cable'], ['inference'])


def test_semantic_cli_writes_masks_for_every_labelled_split(tmp_path, capsys):
    root = tmp_path / 'data'
    images = SPLIT_IMAGES['val']
    coco = {'images': [dict(id=i + 1, file_name=n, width=w, height=h)
                       for i, (n, w, h) in enumerate(images)],
            'categories': [dict(id=1, name='defect')], 'annotations': []}
    coco['annotations'].append(annotation(1, 2, 1, [rectangle(3, 4, 10, 6)], 30, 44))
    write_json(coco, root / 'Screw' / 'train' / ANN)
    for i, (name, w, h) in enumerate(images):
        write_image(root / 'Screw' / 'train' / name, w, h, i)
    assert call_tool('dataset_converters/vision.py', 'semantic', root) == 0
    assert capsys.readouterr().out.endswith(f'wrote {root / "Screw" / "semantic" / "train"}\n')
    mask = np.asarray(Image.open(root / 'Screw' / 'semantic' / 'train' / 'img_1.png'))
    expected = np.zeros((30, 44), dtype=np.uint8)
    expected[4:10, 3:13] = 1
    np.testing.assert_array_equal(mask, expected)
    assert not np.asarray(Image.open(root / 'Screw' / 'semantic' / 'train' / 'img_0.png')).any()
