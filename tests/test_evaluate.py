"""tools/evaluate.py and custom_modules.evaluation: equal to pycocotools' COCOeval."""
from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from coco_builders import (annotation, build_root, call_tool, coco_dict, pycocotools_stats,
                           rle_of, run_tool, write_json)
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from custom_modules.evaluation import (STAT_NAMES, evaluate_datasets, evaluate_file,
                                       render_markdown, render_text, table_rows)
from custom_modules.formats import FormatError

DATASETS = ('Cable', 'Widget')
ANN = '_annotations.coco.json'


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> Path:
    return build_root(tmp_path_factory.mktemp('eval') / 'data')


def predictions(ann_file: Path, seed: int, with_bbox: bool = True) -> list[dict]:
    """Shifted copies of the ground truth (partial overlaps, some with the wrong class,
    some GT missed, some duplicated) plus false positives, with random scores."""
    rng = np.random.RandomState(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    category_ids = gt.getCatIds()
    detections = []

    def add(image_id, category_id, mask):
        det = dict(image_id=image_id, category_id=int(category_id),
                   segmentation=rle_of(mask), score=round(float(rng.rand()), 3))
        if with_bbox:
            det['bbox'] = [float(v) for v in mask_utils.toBbox(
                mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]
        detections.append(det)

    for img in gt.dataset['images']:
        for ann in gt.loadAnns(gt.getAnnIds(imgIds=[img['id']])):
            mask = gt.annToMask(ann)
            for _ in range(rng.choice([0, 1, 1, 2])):
                shifted = np.roll(mask, tuple(rng.randint(-2, 3, size=2)), axis=(0, 1))
                category = ann['category_id'] if rng.rand() < 0.8 else rng.choice(category_ids)
                add(img['id'], category, shifted)
        for _ in range(2):
            false_positive = np.zeros((img['height'], img['width']), dtype=np.uint8)
            x, y = rng.randint(0, img['width'] - 8), rng.randint(0, img['height'] - 8)
            false_positive[y:y + rng.randint(3, 8), x:x + rng.randint(3, 8)] = 1
            add(img['id'], rng.choice(category_ids), false_positive)
    return detections


def write_predictions(root: Path, pred_dir: Path, split: str, seed: int = 0,
                      with_bbox: bool = True) -> None:
    for i, dataset in enumerate(DATASETS):
        write_json(predictions(root / dataset / split / ANN, seed + i, with_bbox),
                   pred_dir / f'{dataset}.segm.json')


@pytest.mark.parametrize('split', ['val', 'inference_gt'])
@pytest.mark.parametrize('with_bbox', [True, False])
def test_segm_scores_equal_pycocotools(root, tmp_path, split, with_bbox):
    write_predictions(root, tmp_path, split, seed=7, with_bbox=with_bbox)
    scores = evaluate_datasets(root, split, tmp_path)
    assert list(scores) == list(DATASETS)
    for dataset in DATASETS:
        expected = pycocotools_stats(root / dataset / split / ANN,
                                     tmp_path / f'{dataset}.segm.json')
        assert 0 < expected[0] < 1 and 0 < expected[8] < 1  # a test that can tell apart
        for name, value in zip(STAT_NAMES, expected):
            assert scores[dataset][name] == pytest.approx(value, abs=1e-9), name


def test_results_without_boxes_keep_pycocotools_areas(tmp_path):
    """pycocotools gives a detection without a box its mask area (with one: the box area),
    which decides the small/medium/large ranges; a filled-in box would change APs."""
    root = tmp_path / 'data'
    coco = coco_dict([('a.png', 96, 96)], [(1, 'defect')])
    triangle = [10.0, 10.0, 50.0, 10.0, 10.0, 50.0]
    coco['annotations'] = [annotation(1, 1, 1, [triangle], 96, 96)]
    write_json(coco, root / 'Screw' / 'val' / ANN)

    def triangle_mask(offset):
        shifted = [v + offset for v in triangle]
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([shifted], 96, 96)))

    # a false positive whose mask is small (< 32^2) but whose box is medium, scored higher
    write_json([dict(image_id=1, category_id=1, score=0.5, segmentation=rle_of(triangle_mask(0))),
                dict(image_id=1, category_id=1, score=0.9, segmentation=rle_of(triangle_mask(40)))],
               tmp_path / 'Screw.segm.json')
    scores = evaluate_datasets(root, 'val', tmp_path, ['Screw'])['Screw']
    expected = pycocotools_stats(root / 'Screw' / 'val' / ANN, tmp_path / 'Screw.segm.json')
    assert [scores[n] for n in STAT_NAMES] == pytest.approx(expected, abs=1e-9)
    assert 0.4 < scores['APs'] < 0.6  # the false positive counts among small detections


def test_bbox_scores_equal_pycocotools(root, tmp_path):
    rng = np.random.RandomState(3)
    for dataset in DATASETS:
        detections = [dict(image_id=d['image_id'], category_id=d['category_id'],
                           score=d['score'], bbox=list(np.add(d['bbox'], rng.uniform(-2, 2, 4))))
                      for d in predictions(root / dataset / 'val' / ANN, 11)]
        write_json(detections, tmp_path / f'{dataset}.bbox.json')
    scores = evaluate_datasets(root, 'val', tmp_path, iou_type='bbox')
    for dataset in DATASETS:
        expected = pycocotools_stats(root / dataset / 'val' / ANN,
                                     tmp_path / f'{dataset}.bbox.json', 'bbox')
        assert 0 < expected[0] < 1
        assert [scores[dataset][n] for n in STAT_NAMES] == pytest.approx(expected, abs=1e-9)


def test_cli_writes_json_markdown_and_csv(root, tmp_path, capsys):
    pred_dir = tmp_path / 'htc'
    write_predictions(root, pred_dir, 'val', seed=3)
    out = tmp_path / 'report' / 'val.json'
    assert call_tool('evaluate.py', '--data-root', root, '--split', 'val', '--pred-dir',
                     pred_dir, '--out', out) == 0
    expected = {d: pycocotools_stats(root / d / 'val' / ANN, pred_dir / f'{d}.segm.json')
                for d in DATASETS}
    mean_ap = np.mean([s[0] for s in expected.values()])
    mean_ar = np.mean([s[8] for s in expected.values()])

    written = json.loads(out.read_text())
    assert set(written) == {'datasets', 'average'}
    for dataset, stats in expected.items():
        assert [written['datasets'][dataset][n] for n in STAT_NAMES] == pytest.approx(
            stats, abs=1e-9)
    assert written['average'] == pytest.approx(
        {'mAP': mean_ap, 'mAR': mean_ar, 'score': (mean_ap + mean_ar) / 2}, abs=1e-9)

    rows = list(csv.reader(out.with_suffix('.csv').read_text().splitlines()))
    assert rows == [
        ['Model', 'Metric', *DATASETS, 'Average', '(mAP+mAR)/2'],
        ['htc', 'mAP', *(f'{100 * expected[d][0]:.1f}' for d in DATASETS), f'{100 * mean_ap:.2f}',
         f'{50 * (mean_ap + mean_ar):.2f}'],
        ['htc', 'mAR', *(f'{100 * expected[d][8]:.1f}' for d in DATASETS), f'{100 * mean_ar:.2f}',
         ''],
    ]
    markdown = out.with_suffix('.md').read_text().splitlines()
    assert markdown[0] == '| Model | Metric | Cable | Widget | Average | (mAP+mAR)/2 |'
    assert markdown[2] == '| ' + ' | '.join(rows[1]) + ' |'
    assert markdown[3] == '|  | ' + ' | '.join(rows[2][1:]) + ' |'
    assert capsys.readouterr().out.splitlines()[1].split() == rows[1]  # the printed table
    assert not list(out.parent.glob('.*'))  # no temporary files left


def test_report_renders_several_row_groups():
    groups = {
        'HTC': {'Cable': {'mAP': 0.427, 'mAR': 0.561}, 'Wood': {'mAP': 0.382, 'mAR': 0.523}},
        'HTC +segm': {'Cable': {'mAP': 0.4283, 'mAR': 0.5711}},
    }
    rows = table_rows(groups)
    assert rows[0] == ['Model', 'Metric', 'Cable', 'Wood', 'Average', '(mAP+mAR)/2']
    assert rows[1] == ['HTC', 'mAP', '42.7', '38.2', '40.45', '47.33']
    assert rows[2] == ['HTC', 'mAR', '56.1', '52.3', '54.20', '']
    assert rows[3] == ['HTC +segm', 'mAP', '42.8', '-', '42.83', '49.97']  # over its datasets
    assert rows[4] == ['HTC +segm', 'mAR', '57.1', '-', '57.11', '']
    assert table_rows(groups, ['Wood'])[3:] == [['HTC +segm', 'mAP', '-', '-', '-'],
                                                ['HTC +segm', 'mAR', '-', '-', '']]
    text = render_text(groups).splitlines()
    assert text[2].split() == ['mAR', '56.1', '52.3', '54.20']  # group name shown once
    assert render_markdown(groups).count('HTC +segm') == 1


def test_default_datasets_are_those_with_results(root, tmp_path):
    write_json(predictions(root / 'Widget' / 'val' / ANN, 1), tmp_path / 'Widget.segm.json')
    assert list(evaluate_datasets(root, 'val', tmp_path)) == ['Widget']
    with pytest.raises(FormatError, match=r'Cable\.segm\.json: results file of dataset Cable'):
        evaluate_datasets(root, 'val', tmp_path, ['Cable', 'Widget'])
    with pytest.raises(FormatError, match='no <Dataset>.bbox.json results file'):
        evaluate_datasets(root, 'val', tmp_path, iou_type='bbox')


def test_a_data_root_holding_only_the_scored_split(root, tmp_path):
    """Scoring needs the scored split only (no train split, no images), and finds the
    datasets by it; a Roboflow ``valid/`` folder is the val split."""
    scored = tmp_path / 'scored'
    (scored / 'Widget' / 'inference_gt').mkdir(parents=True)
    (scored / 'Widget' / 'inference_gt' / ANN).write_text((root / 'Widget' / 'inference_gt'
                                                           / ANN).read_text())
    (scored / 'Cable' / 'valid').mkdir(parents=True)
    (scored / 'Cable' / 'valid' / ANN).write_text((root / 'Cable' / 'val' / ANN).read_text())
    preds = tmp_path / 'preds'
    write_json(predictions(root / 'Widget' / 'inference_gt' / ANN, 3), preds / 'Widget.segm.json')
    write_json(predictions(root / 'Cable' / 'val' / ANN, 4), preds / 'Cable.segm.json')
    for dataset, split in (('Widget', 'inference_gt'), ('Cable', 'val')):
        scores = evaluate_datasets(scored, split, preds)
        assert list(scores) == [dataset]
        expected = pycocotools_stats(root / dataset / split / ANN,
                                     preds / f'{dataset}.segm.json')
        assert scores[dataset]['mAP'] == pytest.approx(expected[0], abs=1e-9)
    assert call_tool('evaluate.py', '--data-root', scored, '--split', 'inference_gt',
                     '--pred-dir', preds) == 0


def test_empty_results_score_zero(root, tmp_path):
    write_json([], tmp_path / 'Cable.segm.json')
    scores = evaluate_file(root / 'Cable' / 'val' / ANN, tmp_path / 'Cable.segm.json')
    assert scores['mAP'] == 0 and scores['mAR'] == 0 and scores['AP50'] == 0


def test_split_without_annotations_is_an_error(root, tmp_path):
    write_json([], tmp_path / 'Cable.segm.json')
    with pytest.raises(FormatError, match=r'inference/_annotations\.coco\.json: the split has '
                       'no annotations'):
        evaluate_datasets(root, 'inference', tmp_path, ['Cable'])


def _detection(**changes) -> dict:
    mask = np.zeros((36, 48), dtype=np.uint8)
    mask[2:9, 3:12] = 1
    return {'image_id': 1, 'category_id': 1, 'score': 0.9, 'segmentation': rle_of(mask),
            **changes}


BAD_RESULTS = {
    'image id not in split': ([_detection(image_id=77)], 'image id 77 is not in'),
    'unknown category': ([_detection(category_id=9)], 'unknown category id 9'),
    'bad counts string': ([_detection(segmentation={'size': [36, 48], 'counts': 'Z?'})],
                          'malformed RLE'),
    'wrong size': ([_detection(segmentation=rle_of(np.ones((40, 48))))],
                   'RLE size [40, 48] differs from the image size [36, 48]'),
    'not a list': ({'image_id': 1}, 'expected a list of detections'),
}


@pytest.mark.parametrize('name', BAD_RESULTS)
def test_bad_results_name_the_file(root, tmp_path, name):
    content, words = BAD_RESULTS[name]
    pred = tmp_path / 'Cable.segm.json'
    write_json([_detection(), *content] if isinstance(content, list) else content, pred)
    with pytest.raises(FormatError) as err:
        evaluate_datasets(root, 'val', tmp_path, ['Cable'])
    assert str(err.value).startswith(f'{pred}: ') and words in str(err.value)


def test_cli_errors_are_one_line(root, tmp_path, capsys):
    (tmp_path / 'Cable.segm.json').write_text('[{"image_id": 1,')
    assert call_tool('evaluate.py', '--data-root', root, '--split', 'val', '--pred-dir',
                     tmp_path, '--datasets', 'Cable', 'Widget') == 1
    assert capsys.readouterr().err == (
        f'error: {tmp_path / "Cable.segm.json"}: malformed JSON '
        '(Expecting property name enclosed in double quotes: line 1 column 17 (char 16))\n')
    write_json([], tmp_path / 'Cable.segm.json')
    # as a user runs it
    run = run_tool('evaluate.py', '--data-root', root, '--split', 'val', '--pred-dir', tmp_path,
                   '--datasets', 'Cable', 'Widget')
    assert run.returncode == 1
    assert run.stderr == (f'error: {tmp_path / "Widget.segm.json"}: results file of dataset '
                          'Widget not found\n')
