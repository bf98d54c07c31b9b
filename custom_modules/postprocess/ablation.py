"""The paper's Table 3 on any labelled split: what each post-processing stage adds.

Stages (rows): HTC alone; HTC with the semantic masks fused in; that ensembled with
Cascade R50; and with Cascade ConvNeXt too. The semantic fusion applies to HTC only (as in
the paper), so the ensembles take the fused HTC predictions as their first input. Each
stage's predictions are kept under ``out_dir/<stage>/`` and scored with
:mod:`custom_modules.evaluation`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from matplotlib.figure import Figure

from custom_modules.evaluation import average_metrics, evaluate_datasets, write_tables
from custom_modules.formats import (INSTANCE_SUFFIX, SEMANTIC_SUFFIX, atomic_output, dump_json,
                                    instance_results_path)
from .ensemble import ensemble_dirs
from .files import select_datasets
from .fusion import fuse_dirs
from .nms import NMSSettings

# (output folder, row name) of each stage, in order
STAGES = (('htc', 'HTC'), ('htc_segm', 'HTC+segm'), ('htc_segm_r50', 'HTC+segm+R50'),
          ('htc_segm_r50_convnext', 'HTC+segm+R50+ConvNeXt'))
Scores = dict[str, dict[str, dict[str, float]]]


def run_stages(model_dirs: Sequence[str | Path], semantic_dir: str | Path,
               data_root: str | Path, split: str, out_dir: str | Path,
               datasets: Sequence[str], weights: Sequence[float] | None = None,
               weight_files: Sequence[str | Path] | None = None,
               weight_mapping: str = 'ratio', score_thr: float = 0.5, rule: str = 'box',
               nms: NMSSettings = NMSSettings(), workers: int = 1,
               calibration_dir: str | Path | None = None) -> dict[str, Path]:
    """Write every stage's predictions; returns ``row name -> predictions folder``.

    ``model_dirs`` are (HTC, R50, ConvNeXt); the two-model stage uses the first two
    weights (or weight files, mapped over those two). ``rule`` is the fusion rule (the
    paper's: ``box``), ``calibration_dir`` the maps of HTC's TTA scores that ``score_thr``
    applies through (:func:`~custom_modules.postprocess.fusion.fuse_dirs`);
    ``weight_mapping`` and ``nms`` are the ensemble's.
    """
    htc, r50, convnext = model_dirs
    out_dir = Path(out_dir)
    folders = {name: out_dir / folder for folder, name in STAGES}
    htc_copy, fused, two, three = folders.values()
    for dataset in datasets:
        source = instance_results_path(htc, dataset)
        with atomic_output(instance_results_path(htc_copy, dataset), 'wb') as f:
            f.write(source.read_bytes())
    fuse_dirs(htc, semantic_dir, fused, datasets, score_thr, rule, data_root, split,
              calibration_dir)
    for inputs, folder in (([fused, r50], two), ([fused, r50, convnext], three)):
        n = len(inputs)
        ensemble_dirs(inputs, folder, data_root, split,
                      weights=None if weights is None else weights[:n],
                      weight_files=None if weight_files is None else weight_files[:n],
                      weight_mapping=weight_mapping, datasets=datasets, nms=nms,
                      workers=workers)
    return folders


def run_ablation(model_dirs: Sequence[str | Path], semantic_dir: str | Path,
                 data_root: str | Path, split: str, out_dir: str | Path,
                 weights: Sequence[float] | None = None,
                 weight_files: Sequence[str | Path] | None = None,
                 weight_mapping: str = 'ratio', datasets: Sequence[str] | None = None,
                 score_thr: float = 0.5, rule: str = 'box', nms: NMSSettings = NMSSettings(),
                 workers: int = 1, extra_rows: Mapping[str, str | Path] | None = None,
                 calibration_dir: str | Path | None = None) -> Scores:
    """Run the stages, score them, and write ``table3.{md,csv,json,png}`` to ``out_dir``.
    ``extra_rows`` (row name -> predictions folder, e.g. a pseudo-label round's final
    ensemble) are scored after the stages, in their order.

    Returns ``row name -> dataset -> COCO stats`` (fractions).
    """
    if len(model_dirs) != 3:
        raise ValueError(f'expected 3 model folders (HTC, R50, ConvNeXt), got {len(model_dirs)}')
    names = select_datasets([(d, INSTANCE_SUFFIX) for d in model_dirs]
                            + [(semantic_dir, SEMANTIC_SUFFIX)], datasets, require_all=True)
    folders = run_stages(model_dirs, semantic_dir, data_root, split, out_dir, names, weights,
                         weight_files, weight_mapping, score_thr, rule, nms, workers,
                         calibration_dir)
    folders.update(extra_rows or {})
    scores = {name: evaluate_datasets(data_root, split, folder, names)
              for name, folder in folders.items()}
    stem = Path(out_dir) / 'table3'
    write_tables(scores, stem, names)
    dump_json(scores, stem.with_suffix('.json'), indent=2)
    plot_stages(scores, stem.with_suffix('.png'))
    return scores


def plot_stages(scores: Mapping[str, Mapping[str, Mapping[str, float]]],
                path: str | Path) -> None:
    """Grouped bars of the dataset-averaged mAP and mAR (in %) of each stage."""
    averages = [average_metrics(per_dataset) for per_dataset in scores.values()]
    fig = Figure(figsize=(1.8 * len(scores) + 2, 4), layout='constrained')
    ax = fig.add_subplot()
    width = 0.38
    for offset, metric in ((-width / 2, 'mAP'), (width / 2, 'mAR')):
        values = [100 * a[metric] for a in averages]
        bars = ax.bar([i + offset for i in range(len(values))], values, width, label=metric)
        ax.bar_label(bars, fmt='%.1f', fontsize=8)
    ax.set_xticks(range(len(scores)), list(scores), fontsize=8)
    ax.set_ylabel('average over datasets (%)')
    ax.set_title('Post-processing ablation (Table 3)')
    ax.legend()
    with atomic_output(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=120)
