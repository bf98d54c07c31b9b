"""tools/analysis_tools/compare_tta.py on a tiny random model: every mode's results file,
its metrics and its score distribution, recomputed here from the file."""
from __future__ import annotations

import importlib.util

import numpy as np
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from custom_modules.engine import adapt_to_device, load_config
from custom_modules.evaluation import evaluate_file
from custom_modules.formats import load_json
from custom_modules.vision import annotation_path

from tool_helpers import REPO, config_path, make_data_root

spec = importlib.util.spec_from_file_location(
    'compare_tta', REPO / 'tools' / 'analysis_tools' / 'compare_tta.py')
COMPARE = importlib.util.module_from_spec(spec)
spec.loader.exec_module(COMPARE)


def _two_scale_config(tmp_path) -> str:
    """The tiny Cascade R-CNN with two TTA scales instead of seven (test time)."""
    config = tmp_path / 'cascade_r50_two_scales.py'
    config.write_text(
        f"_base_ = {config_path('cascade_r50_tiny')!r}\n"
        "scales = [[dict(type='Resize', scale=(s, s), keep_ratio=True) for s in (128, 192)]]\n"
        "tta_pipeline = [dict(t, transforms=scales + t['transforms'][1:])\n"
        "                if t['type'] == 'TestTimeAug' else t for t in _base_.tta_pipeline]\n")
    return str(config)


def test_compare_tta_reports_metrics_and_score_distribution(tmp_path, capsys):
    root = tmp_path / 'data'
    dataset = make_data_root(root)
    config = _two_scale_config(tmp_path)
    cfg = load_config(config, None, str(root), dataset, test_split='val')
    adapt_to_device(cfg)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = tmp_path / 'random.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    work = tmp_path / 'compare'

    COMPARE.main([config, str(checkpoint), '--data-root', str(root), '--dataset', dataset,
                  '--merges', 'detection-found', '--score-thr', '0.3', '--work-dir', str(work)])

    table = load_json(work / 'compare_tta.json')
    assert list(table['modes']) == ['single', 'detection-found']
    ann_file = annotation_path(root, dataset, 'val')
    printed = capsys.readouterr().out
    for mode, row in table['modes'].items():
        results = work / mode / f'{dataset}.segm.json'
        scores = np.array([det['score'] for det in load_json(results)])
        assert row['instances'] == len(scores) > 0
        assert row['above_thr'] == sum(s > 0.3 for s in scores)
        assert row['q50'] == np.median(scores) and row['max'] == scores.max()
        assert row['mAP'] == evaluate_file(ann_file, results)['mAP']
        assert f'\n{mode} ' in printed
    assert '>0.3' in printed
