"""Test-time set-up of a config (results files, TTA) and the checked, atomic publication
of the results files, for the tools that predict."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from mmengine.config import Config, ConfigDict

from custom_modules.formats import (BBOX_SUFFIX, INSTANCE_SUFFIX, SEMANTIC_SUFFIX, FormatError,
                                    SplitInfo, load_instance_results, load_json,
                                    load_semantic_results)
from custom_modules.vision.registry import annotation_path
from custom_modules.vision.selection import innermost_dataset, is_semantic

__all__ = ['use_tta', 'use_tta_pipeline', 'configure_test', 'publish_results',
           'without_transform']


def use_tta_pipeline(cfg: Config) -> None:
    """Feed the test set through the config's ``tta_pipeline``, for a model wrapped in
    its ``tta_model``."""
    if not cfg.get('tta_model') or not cfg.get('tta_pipeline'):
        raise FormatError(f'{cfg.filename}: test-time augmentation needs "tta_model" and '
                          '"tta_pipeline" in the config')
    innermost_dataset(cfg.test_dataloader.dataset).pipeline = cfg.tta_pipeline


def use_tta(cfg: Config) -> None:
    """Wrap the model in the config's ``tta_model`` and feed the test set through its
    ``tta_pipeline``, as MMDetection's and MMSegmentation's test tools do."""
    use_tta_pipeline(cfg)
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)


def _has_annotations(ann_file: Path) -> bool:
    return bool(load_json(ann_file).get('annotations'))


def without_transform(pipeline: list, name: str) -> list:
    """``pipeline`` without the transforms of type ``name``, also inside the nested
    transform lists of ``TestTimeAug``."""
    kept = []
    for step in pipeline:
        if isinstance(step, list):
            kept.append(without_transform(step, name))
        elif step.get('type') != name:
            if 'transforms' in step:
                step = dict(step, transforms=without_transform(step['transforms'], name))
            kept.append(step)
    return kept


def configure_test(cfg: Config, data_root: str | Path, dataset: str, split: str,
                   outfile_prefix: str | Path) -> list[Path]:
    """Make the test evaluator write the split's results files at ``outfile_prefix``
    (and score a labelled split); return the paths of the files it will write.

    Detectors: the COCO metric (``VisionCocoMetric``) writes ``.segm.json`` and
    ``.bbox.json`` with the annotation file's category ids (``format_only`` on an
    unlabelled split). The semantic model: :class:`SemanticResultsWriter` writes
    ``.sem.json``, after MMSegmentation's IoU metric where the split has annotations to
    make masks of.
    """
    prefix = str(outfile_prefix)
    labelled = _has_annotations(annotation_path(data_root, dataset, split))
    if not is_semantic(cfg):
        cfg.test_evaluator = ConfigDict(cfg.test_evaluator.to_dict(), outfile_prefix=prefix,
                                        format_only=not labelled)
        return [Path(prefix + INSTANCE_SUFFIX), Path(prefix + BBOX_SUFFIX)]
    metrics = cfg.test_evaluator
    metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
    if not labelled:  # no masks: predict only
        metrics = []
        test_set = innermost_dataset(cfg.test_dataloader.dataset)
        test_set.pipeline = without_transform(test_set.pipeline, 'LoadDefectMask')
    cfg.test_evaluator = metrics + [dict(type='SemanticResultsWriter', outfile_prefix=prefix)]
    return [Path(prefix + SEMANTIC_SUFFIX)]


def _validate(path: Path, split: SplitInfo) -> None:
    if path.name.endswith(SEMANTIC_SUFFIX):
        load_semantic_results(path, split)
    else:
        load_instance_results(path, split, masks=not path.name.endswith(BBOX_SUFFIX))


def publish_results(staged: list[Path], out_dir: str | Path, ann_file: str | Path) -> list[Path]:
    """Check every staged results file against the split's annotation file, then move
    each into ``out_dir`` with one rename (no reader sees a partial file) and remove the
    staging folder. A file that fails the check raises ``FormatError`` and nothing moves."""
    split = SplitInfo(ann_file)
    for path in staged:
        _validate(path, split)
    published = []
    for path in staged:
        target = Path(out_dir) / path.name
        os.replace(path, target)
        published.append(target)
    shutil.rmtree(staged[0].parent, ignore_errors=True)
    return published
