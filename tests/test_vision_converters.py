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
from coco_builders import (CATEGORIES, SPLIT_IMAGES, annotation, build_root, call_tool,
                           load_ann, rectangle, restart_ids, run_tool, write_image, write_json)
from PIL import Image
from pycocotools.coco import COCO

from custom_modules.formats import FormatError
from custom_modules.vision.checks import ERROR, KINDS, WARNING, check_data_root
from custom_modules.vision.merge import export_train_val
from custom_modules.vision.semantic_masks import export_all_semantic_masks

ANN = '_annotations.coco.json'


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_root(tmp_path / 'data')


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / 'exports'


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
    widget_train = root / 'Widget' / 'train' / ANN
    # the only remark: Widget's second train image has no annotation
    assert report.problem_lines() == [
        f"warning: {widget_train}: image 2 ('img_1.jpg') has no annotations"]
    for dataset in CATEGORIES:
        expected = {}
        for split in ('train', 'val', 'inference', 'inference_gt'):
            coco = load_ann(root, dataset, split)
            expected[split] = len(coco['images']), len(coco['annotations'])
        assert report.counts[dataset] == expected
        assert expected['inference'][1] == 0 and expected['inference_gt'][1] > 0
    lines = report.count_lines()
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


def _two_points(coco):
    coco['annotations'][0]['segmentation'] = [[1.0, 1.0, 5.0, 1.0]]


def _flat_polygon(coco):  # three points on a line: no pixel
    coco['annotations'][0]['segmentation'] = [[1.0, 1.0, 3.0, 1.0, 5.0, 1.0]]


def _bad_rle(coco):
    coco['annotations'][0]['segmentation'] = {'size': [3, 3], 'counts': '00'}


def _rename_category(coco):
    coco['categories'][0]['name'] = 'renamed'


def _duplicate_stem(coco):
    coco['images'][1]['file_name'] = 'img_0.png'


def _clash_stems(root: Path) -> Path:
    """Cable's second train image becomes img_0.png, beside img_0.jpg."""
    folder = root / 'Cable' / 'train'
    Image.open(folder / 'img_1.jpg').save(folder / 'img_0.png')
    (folder / 'img_1.jpg').unlink()
    return edit_json(root, 'Cable', 'train', _duplicate_stem)


def _unused_category(coco):
    coco['categories'].append(dict(id=9, name='dust', supercategory='defect'))


def _drop_annotations_of_first_image(coco):
    coco['annotations'] = [a for a in coco['annotations'] if a['image_id'] != 1]


PLANTED = {
    # name: (dataset, split, edit, kind, words in the problem line)
    'duplicate image id': ('Widget', 'val', _set('id', 1, 1, 'images'), 'duplicate image id',
                           'image id 1 appears'),
    'duplicate file name': ('Cable', 'train', _set('file_name', 'img_0.jpg', 1, 'images'),
                            'duplicate file name', "'img_0.jpg' is also used by image 1"),
    'image size': ('Cable', 'val', _set('width', 47, 0, 'images'), 'image size',
                   "'img_0.jpg' is 48x36 pixels but the annotation file says 47x36"),
    'duplicate annotation id': ('Cable', 'train', _set('id', 1, 1), 'duplicate annotation id',
                                'annotation id 1 appears'),
    'category mismatch': ('Widget', 'val', _rename_category, 'categories differ between splits',
                          'differ from'),
    'polygon outside image': ('Cable', 'train', _polygon_outside, 'bad segmentation',
                              'outside the 48x36 image'),
    'odd polygon': ('Cable', 'val', _odd_polygon, 'bad segmentation',
                    'even number of coordinates'),
    'two-point polygon': ('Widget', 'train', _two_points, 'bad segmentation',
                          'at least 3 points, got 4 numbers'),
    'bad RLE': ('Widget', 'inference_gt', _bad_rle, 'bad segmentation', 'RLE'),
    'unknown image': ('Cable', 'val', _set('image_id', 99), 'unknown image id',
                      'image id 99 is not in'),
    'unknown category': ('Widget', 'train', _set('category_id', 4), 'unknown category id',
                         'unknown category id 4'),
    'missing iscrowd': ('Cable', 'train', lambda c: c['annotations'][0].pop('iscrowd'),
                        'unreadable annotation file', 'missing "iscrowd"'),
    'bad bbox': ('Cable', 'train', _shift_bbox, 'bbox differs from the mask',
                 "differs from the mask's"),
    'bad area': ('Widget', 'train', _triple_area, 'area differs from the mask',
                 "differs from the mask's"),
    'empty mask': ('Cable', 'val', _flat_polygon, 'empty mask', 'the mask has no pixel'),
    'box under 1 px': ('Widget', 'val', lambda c: c['annotations'][0]['bbox'].__setitem__(3, 0.5),
                       'box or area below 1 px', 'area'),
    'zero area': ('Cable', 'inference_gt', _set('area', 0), 'box or area below 1 px', 'area 0'),
    'unlabelled image': ('Cable', 'val', _drop_annotations_of_first_image,
                         'image without annotations', "image 1 ('img_0.jpg') has no annotations"),
}


@pytest.mark.parametrize('name', PLANTED)
def test_check_reports_each_planted_problem_as_error_or_warning(root, name):
    dataset, split, edit, kind, words = PLANTED[name]
    path = edit_json(root, dataset, split, edit)
    report = check_data_root(root)
    found = [p for p in report.problems if p.file == path and p.kind == kind]
    assert len(found) == 1 and words in str(found[0]), report.problem_lines()
    assert str(found[0]).startswith(f'{path}: ')
    assert found[0].severity == KINDS[kind][0]
    if found[0].severity == WARNING:  # a warning alone is no error
        assert report.errors == [], report.problem_lines()


def test_check_warns_of_file_name_stems_that_clash(root):
    path = _clash_stems(root)
    report = check_data_root(root, ['Cable'])
    assert report.problem_lines() == [
        f"warning: {path}: image 2: file name 'img_0.png' has the stem of 'img_0.jpg' (image 1)"]


def test_errors_break_a_stage_and_warnings_are_what_stages_cope_with():
    """The split the issue asks for: what the stages cannot cope with is an error."""
    errors = {k for k, (severity, _) in KINDS.items() if severity == ERROR}
    warnings = {k for k, (severity, _) in KINDS.items() if severity == WARNING}
    assert {'missing image', 'unreadable image', 'image size', 'bad segmentation',
            'unknown category id', 'duplicate image id', 'duplicate annotation id',
            'categories differ between splits'} <= errors
    assert warnings == {'bbox differs from the mask', 'area differs from the mask',
                        'box or area below 1 px', 'empty mask', 'image without annotations',
                        'unused category', 'project category', 'file name stems clash'}


def test_check_warns_of_a_category_no_annotation_uses(root):
    for split in ('train', 'val', 'inference', 'inference_gt'):
        edit_json(root, 'Widget', split, _unused_category)
    problems = [p for p in check_data_root(root, ['Widget']).problems
                if p.kind == 'unused category']
    assert [str(p) for p in problems] == [
        f"{root / 'Widget' / 'train' / ANN}: category 9 'dust': no annotation of train or val "
        'uses it']


def test_check_accepts_roboflow_project_category_and_valid_folder(root):
    """A Roboflow export as it comes: the id-0 project category, ``valid/`` for val, ids
    restarting at 0 in every split."""
    def roboflow(coco):
        for cat in coco['categories']:
            cat['supercategory'] = 'cables'
        coco['categories'].insert(0, dict(id=0, name='cables', supercategory='none'))
        restart_ids(coco)
    for split in ('train', 'val', 'inference', 'inference_gt'):
        edit_json(root, 'Cable', split, roboflow)
    (root / 'Cable' / 'val').rename(root / 'Cable' / 'valid')
    report = check_data_root(root, ['Cable'])
    assert report.problem_lines() == [
        f"warning: {root / 'Cable' / 'train' / ANN}: category 0 'cables' is Roboflow's "
        'project category (supercategory "none", no annotations): not a class']
    valid = load_ann(root, 'Cable', 'valid')
    assert report.counts['Cable']['val'] == (2, len(valid['annotations']))
    (root / 'Cable' / 'val').mkdir()
    assert [p.kind for p in check_data_root(root, ['Cable']).errors] == ['ambiguous split folder']


def test_check_reports_missing_image_and_registry_mismatch(root):
    (root / 'Cable' / 'train' / 'img_1.jpg').unlink()
    for split in ('train', 'val', 'inference', 'inference_gt'):
        edit_json(root, 'Cable', split, lambda c: c['categories'][1].update(name='spark'))
    train = root / 'Cable' / 'train' / ANN
    assert check_data_root(root, ['Cable']).problem_lines() == [
        f"error: {train}: image 2: 'img_1.jpg' not found in {root / 'Cable' / 'train'}",
        f"error: {train}: categories ['break', 'spark'] do not match the VISION classes of "
        "Cable ['break', 'thunderbolt']",
    ]


def test_check_reports_malformed_json_and_inference_gt_image_mismatch(root):
    (root / 'Widget' / 'val' / ANN).write_text('{"images": [')
    gt = edit_json(root, 'Cable', 'inference_gt', _set('file_name', 'test_1.jpg', 1, 'images'))
    lines = check_data_root(root, ['Cable', 'Widget']).problem_lines()
    assert any(p.startswith(f'error: {root / "Widget" / "val" / ANN}: malformed JSON')
               for p in lines)
    assert any(p.startswith(f'error: {gt}: images (ids, file names, sizes) differ') for p in lines)
    # inference_gt reads its images from inference/: the renamed one is missing there
    assert any(p.startswith(f"error: {gt}: image 2: 'test_1.jpg' not found in "
                            f"{root / 'Cable' / 'inference'}") for p in lines)


def test_check_summary_counts_per_kind_and_file_with_a_few_examples(root):
    def shift_all(coco):
        for ann in coco['annotations']:
            ann['bbox'][0] += 3
    for split in ('train', 'val'):
        edit_json(root, 'Widget', split, shift_all)
    report = check_data_root(root)
    shifted = {split: len(load_ann(root, 'Widget', split)['annotations'])
               for split in ('train', 'val')}
    lines = report.summary_lines()
    assert lines[0] == (f'warning: bbox differs from the mask ({sum(shifted.values())} in 2 '
                        f'files): {KINDS["bbox differs from the mask"][1]}')
    assert lines[1] == f'  {root / "Widget" / "train" / ANN}: {shifted["train"]}'
    examples = [line for line in lines if line.startswith('    annotation ')]
    assert len(examples) == min(3, shifted['train']) + min(3, shifted['val'])
    assert lines[-1] == (f'0 errors, {sum(shifted.values()) + 1} warnings: nothing stops '
                         'training, prediction or scoring (--verbose lists every one)')
    assert len(report.problem_lines()) == sum(shifted.values()) + 1


def test_check_cli_exit_codes(root, capsys):
    assert call_tool('dataset_converters/vision.py', 'check', root) == 0
    report = check_data_root(root)
    assert capsys.readouterr().out.splitlines() == report.count_lines() + report.summary_lines()
    edit_json(root, 'Cable', 'train', _shift_bbox)  # a warning: still exit 0
    assert call_tool('dataset_converters/vision.py', 'check', root, '--datasets', 'Cable') == 0
    assert 'warning: bbox differs from the mask (1 in 1 file)' in capsys.readouterr().out
    path = edit_json(root, 'Cable', 'val', _set('image_id', 99))
    # as a user runs it: exit status 1 on an error; --verbose prints every problem
    bad = run_tool('dataset_converters/vision.py', 'check', root, '--datasets', 'Cable',
                   '--verbose')
    assert bad.returncode == 1
    report = check_data_root(root, ['Cable'])
    assert bad.stdout.splitlines() == (report.count_lines() + report.problem_lines()
                                       + ['1 error, 1 warning: fix the errors before training'])
    assert report.problem_lines()[0].startswith(f'error: {path}: annotation 1 (image 99): ')


def test_merge_and_semantic_cli_errors(root, out, capsys):
    assert call_tool('dataset_converters/vision.py', 'merge', root, '--datasets', 'Ring',
                     '--out', out) == 1
    assert capsys.readouterr().err == (f'error: {root / "Ring" / "train" / ANN}: '
                                       'file not found\n')
    assert call_tool('dataset_converters/vision.py', 'semantic', root / 'nowhere',
                     '--out', out) == 1
    assert capsys.readouterr().err == f'error: {root / "nowhere"}: data root does not exist\n'
    for command in ('merge', 'semantic'):
        assert call_tool('dataset_converters/vision.py', command, root, '--out',
                         root / 'Cable' / 'derived') == 1
        assert capsys.readouterr().err.startswith(
            f'error: {root / "Cable" / "derived"}: output folder inside the data root')
    assert not out.exists() and not (root / 'Cable' / 'derived').exists()


# --------------------------------------------------------------------------- merge

def _annotation_fingerprints(split_dir: Path) -> Counter:
    """(image file content, category, mask) of every annotation, independent of ids/names."""
    coco = coco_api(split_dir / ANN)
    images = {i['id']: (split_dir / i['file_name']).read_bytes() for i in coco.dataset['images']}
    return Counter((images[a['image_id']], a['category_id'], coco.annToMask(a).tobytes())
                   for a in coco.dataset['annotations'])


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob('*'))}


def test_merge_keeps_every_annotation_with_unique_ids_and_names(root, out):
    before = _tree(root)
    folder = export_train_val(root, 'Widget', out)
    assert folder == out / 'Widget' / 'train_val'
    assert _tree(root) == before  # the data root is input only
    merged = json.loads((folder / ANN).read_text())
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
    assert _annotation_fingerprints(folder) == (
        _annotation_fingerprints(root / 'Widget' / 'train')
        + _annotation_fingerprints(root / 'Widget' / 'val'))
    linked = os.stat(folder / 'img_1.jpg')
    assert linked.st_ino == os.stat(root / 'Widget' / 'train' / 'img_1.jpg').st_ino


def test_merge_of_splits_whose_ids_restart(root, out):
    """Roboflow numbers images and annotations from 0 in every split."""
    for split in ('train', 'val'):
        edit_json(root, 'Cable', split, restart_ids)
    folder = export_train_val(root, 'Cable', out)
    merged = json.loads((folder / ANN).read_text())
    assert [i['id'] for i in merged['images']] == list(range(1, 6))
    assert _annotation_fingerprints(folder) == (
        _annotation_fingerprints(root / 'Cable' / 'train')
        + _annotation_fingerprints(root / 'Cable' / 'val'))


def test_merge_replaces_an_earlier_export_without_leftovers(root, out):
    export_train_val(root, 'Cable', out)
    (out / 'Cable' / 'train_val' / 'stale.jpg').write_bytes(b'x')
    export_train_val(root, 'Cable', out)
    assert not (out / 'Cable' / 'train_val' / 'stale.jpg').exists()
    assert sorted(p.name for p in (out / 'Cable').iterdir()) == ['train_val']


def test_merge_refuses_different_categories_and_invalid_splits(root, out):
    edit_json(root, 'Widget', 'val', _rename_category)
    with pytest.raises(FormatError, match=r'Widget/val/_annotations\.coco\.json: categories'):
        export_train_val(root, 'Widget', out)
    path = edit_json(root, 'Cable', 'train', _set('image_id', 42))
    with pytest.raises(FormatError) as err:
        export_train_val(root, 'Cable', out)
    assert str(err.value).startswith(f'{path}: annotation 1 (image 42): image id 42 is not in')
    assert not (out / 'Cable').exists()
    edit_json(root, 'Cable', 'train', _set('image_id', 1))
    edit_json(root, 'Cable', 'train', _shift_bbox)  # a warning does not stop the export
    assert (export_train_val(root, 'Cable', out) / ANN).is_file()


# --------------------------------------------------------------------------- semantic

def _union_of_instance_masks(coco: COCO, img: dict) -> np.ndarray:
    expected = np.zeros((img['height'], img['width']), dtype=np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img['id']])):
        expected = np.maximum(expected, coco.annToMask(ann))
    return expected


def test_semantic_masks_are_the_union_of_instance_masks(root, out):
    before = _tree(root)
    splits = ('train', 'val', 'train_val', 'inference_gt')
    folders = export_all_semantic_masks(root, out, ['Widget'], splits)
    assert folders == [out / 'Widget' / s for s in splits]
    assert _tree(root) == before
    merged_dir = export_train_val(root, 'Widget', out.parent / 'merged')
    empty_seen = False
    for split, folder in zip(splits, folders):
        ann_file = merged_dir / ANN if split == 'train_val' else root / 'Widget' / split / ANN
        coco = coco_api(ann_file)
        images = coco.dataset['images']
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f'{Path(i["file_name"]).stem}.png' for i in images)
        for img in images:
            expected = _union_of_instance_masks(coco, img)
            png = Image.open(folder / f'{Path(img["file_name"]).stem}.png')
            assert png.mode == 'L'
            np.testing.assert_array_equal(np.asarray(png), expected)
            empty_seen |= not expected.any()
    assert empty_seen  # Widget's second train image has no annotation


def test_semantic_default_splits_and_unlabelled_split(root, out):
    assert export_all_semantic_masks(root, out, ['Cable']) == [
        out / 'Cable' / s for s in ('train', 'val', 'inference_gt')]
    with pytest.raises(FormatError, match='has no labels'):
        export_all_semantic_masks(root, out, ['Cable'], ['inference'])


def test_semantic_export_refuses_stems_that_clash(root, out):
    _clash_stems(root)
    with pytest.raises(FormatError, match=r"two images have the file name stem 'img_0'"):
        export_all_semantic_masks(root, out, ['Cable'], ['train'])
    assert not (out / 'Cable' / 'train').exists()


def test_semantic_cli_writes_masks_for_every_labelled_split(tmp_path, out, capsys):
    root = tmp_path / 'data'
    images = SPLIT_IMAGES['val']
    coco = {'images': [dict(id=i + 1, file_name=n, width=w, height=h)
                       for i, (n, w, h) in enumerate(images)],
            'categories': [dict(id=1, name='defect')], 'annotations': []}
    coco['annotations'].append(annotation(1, 2, 1, [rectangle(3, 4, 10, 6)], 30, 44))
    write_json(coco, root / 'Screw' / 'train' / ANN)
    for i, (name, w, h) in enumerate(images):
        write_image(root / 'Screw' / 'train' / name, w, h, i)
    assert call_tool('dataset_converters/vision.py', 'semantic', root, '--out', out) == 0
    assert capsys.readouterr().out.endswith(f'wrote {out / "Screw" / "train"}\n')
    mask = np.asarray(Image.open(out / 'Screw' / 'train' / 'img_1.png'))
    expected = np.zeros((30, 44), dtype=np.uint8)
    expected[4:10, 3:13] = 1
    np.testing.assert_array_equal(mask, expected)
    assert not np.asarray(Image.open(out / 'Screw' / 'train' / 'img_0.png')).any()
