"""The reports: per-image missed and false defects as pycocotools matches them (against
hand-counted matches), and the pipeline's report/index.html in headless Chromium: every
table and image loads, every link leads to a file, its numbers are the metrics files',
its galleries show the worst images first."""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from custom_modules.evaluation import image_errors
from custom_modules.formats import (SplitInfo, encode_mask, instance_results_path,
                                    load_instance_results, load_json)
from custom_modules.vision import annotation_path

from browser import assert_nothing_broken, headless_chromium, local_path, open_page
from postprocess_helpers import rect

MODELS = ('htc', 'r50', 'convnext')


def _gt(annotations: list[dict], images: int = 3) -> COCO:
    coco = COCO()
    coco.dataset = dict(
        images=[dict(id=i, height=20, width=30, file_name=f'{i}.png')
                for i in range(1, images + 1)],
        categories=[dict(id=1, name='one'), dict(id=2, name='two')],
        annotations=[dict(ann, id=i, area=float(mask_utils.area(ann['segmentation'])),
                          bbox=[float(v) for v in mask_utils.toBbox(ann['segmentation'])],
                          iscrowd=ann.get('iscrowd', 0))
                     for i, ann in enumerate(annotations, start=1)])
    coco.createIndex()
    return coco


def _det(image_id: int, mask: np.ndarray, score: float, category_id: int = 1) -> dict:
    return dict(image_id=image_id, category_id=category_id, score=score,
                segmentation=encode_mask(mask))


def test_image_errors_count_missed_and_false_defects():
    a, b, c = rect(0, 10, 0, 10), rect(0, 10, 15, 25), rect(12, 20, 0, 10)
    gt = _gt([dict(image_id=1, category_id=1, segmentation=encode_mask(a)),  # id 1
              dict(image_id=1, category_id=1, segmentation=encode_mask(b)),  # id 2
              dict(image_id=1, category_id=2, segmentation=encode_mask(c)),  # id 3
              dict(image_id=2, category_id=1, segmentation=encode_mask(a), iscrowd=1)])
    shifted_c = rect(12, 20, 2, 12)  # IoU with c: 64 / 96 = 0.67
    detections = [
        _det(1, a, 0.9),  # finds a
        _det(1, a, 0.8),  # a is taken: false
        _det(1, b, 0.7, category_id=2),  # b's place, wrong class: false, and b is missed
        _det(1, shifted_c, 0.6, category_id=2),  # finds c
        _det(2, a, 0.5),  # on a crowd region: ignored, not false
        _det(3, b, 0.4),  # nothing there: false
    ]
    errors = image_errors(gt, detections)
    assert errors[1].matched == [True, False, False, True] and errors[1].missed == [2]
    assert errors[1].errors == 3
    assert errors[2].matched == [True] and errors[2].missed == []
    assert errors[3].matched == [False] and errors[3].errors == 1
    # a stricter IoU: the shifted detection no longer finds c
    strict = image_errors(gt, detections, iou_thr=0.7)
    assert strict[1].matched == [True, False, False, False] and strict[1].missed == [2, 3]


def _hand_counted_errors(gt: COCO, image_id: int, detections: list[dict]) -> int:
    """Missed + false defects by a direct greedy match: detections by score, each taking
    the free defect of its class with the highest mask IoU >= 0.5 (numpy on decoded
    masks)."""
    defects = [(ann['category_id'], gt.annToMask(ann).astype(bool))
               for ann in gt.loadAnns(gt.getAnnIds(imgIds=[image_id]))]
    taken: set[int] = set()
    false = 0
    for det in sorted(detections, key=lambda d: -d['score']):
        mask = mask_utils.decode(dict(det['segmentation'],
                                      counts=det['segmentation']['counts'].encode())).astype(bool)
        best, best_iou = None, 0.5
        for j, (category, defect) in enumerate(defects):
            if j in taken or category != det['category_id']:
                continue
            iou = (mask & defect).sum() / (mask | defect).sum()
            if iou >= best_iou:
                best, best_iou = j, iou
        if best is None:
            false += 1
        else:
            taken.add(best)
    return len(defects) - len(taken) + false


def test_pipeline_report_in_a_headless_browser(pipeline_run, tmp_path):
    data_root, work_dir, dataset, _ = pipeline_run
    index = work_dir / 'report' / 'index.html'
    with headless_chromium(tmp_path / 'profile') as driver:
        page = open_page(driver, index, tmp_path / 'pipeline_report.png')

    assert_nothing_broken(page, index)
    assert (tmp_path / 'pipeline_report.png').stat().st_size > 10_000
    rows = [line.split('\t') for table in page.tables for line in table.split('\n')]
    groups = {f'{model} on {split}': load_json(work_dir / 'metrics' / f'{split}_{model}.json')[
        'datasets'][dataset] for model in MODELS for split in ('inference_gt', 'val')}
    groups.update({f'{stage} (Table 3)': scores[dataset] for stage, scores in load_json(
        work_dir / 'ablation' / 'table3.json').items()})
    for name, scores in groups.items():  # one dataset: its cells are the averages too
        mean = (scores['mAP'] + scores['mAR']) / 2
        pair = [[name.split(' ')[0], 'mAP', f'{100 * scores["mAP"]:.1f}',
                 f'{100 * scores["mAP"]:.2f}', f'{100 * mean:.2f}'],
                ['', 'mAR', f'{100 * scores["mAR"]:.1f}', f'{100 * scores["mAR"]:.2f}', '']]
        assert any(rows[i:i + 2] == pair for i in range(len(rows))), name
    text = '\n'.join(page.tables)
    assert any(img['src'].endswith('/report/table3.png') for img in page.images)  # the chart
    linked = {local_path(url) for url in page.links}
    assert set((work_dir / 'logs').glob('*.log')) <= linked  # every stage's log
    assert work_dir / 'bags' / f'{dataset}.json' in linked
    for stage in load_json(work_dir / 'timings.json')['stages_s']:
        assert f'\n{stage}\t' in text

    # the gallery: ground truth beside the final prediction, worst images first
    gt = COCO(str(annotation_path(data_root, dataset, 'inference_gt')))
    final = load_instance_results(instance_results_path(work_dir / 'preds' / 'inference' /
                                                        'ensemble', dataset),
                                  SplitInfo(annotation_path(data_root, dataset, 'inference')))
    id_of = {img['file_name'].rsplit('.', 1)[0]: img['id'] for img in gt.dataset['images']}
    shown = [local_path(img['src']).stem for img in page.images if '/gallery/' in img['src']]
    assert sorted(shown) == sorted(id_of)  # all of the smoke data's few images
    counts = [_hand_counted_errors(gt, id_of[stem], [d for d in final if d['score'] > 0.3
                                                     and d['image_id'] == id_of[stem]])
              for stem in shown]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0
