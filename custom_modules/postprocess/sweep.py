"""Choosing the post-processing settings on a labelled split, over several runs at once.

A run is one labelled split's predictions: the three instance models' (HTC, R50,
ConvNeXt), the semantic model's, and the instance models' metrics files that weight the
ensemble. Every (run, dataset) pair is a *case*; a setting's figure is the mean over all
cases of the Table 3 row it changes.

Two steps, as the stages chain:

1. the fusion threshold tau1 of the HTC+segm row;
2. with HTC fused at the chosen (or a given) tau1, the ensemble grid: suppression rule x
   IoU threshold x cap x weight mapping, for the HTC+segm+R50 and HTC+segm+R50+ConvNeXt
   rows.

Criterion: the mean over cases of (mAP + mAR) / 2 (the paper's last column) of HTC+segm for
tau1 and of the three-model row (the submitted one) for the ensemble. Ties, to the 0.01
points the tables show, go to the setting listed first: the default grids list the paper's
choice first along every axis.

Files are read once; each case's pooled mask IoUs are computed once per ensemble row and
reused by every setting, so a setting costs its suppression and a COCOeval.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
from pycocotools.coco import COCO
from tqdm import tqdm

from custom_modules.evaluation import average_metrics, coco_map_mar, ground_truth
from custom_modules.formats import (INSTANCE_SUFFIX, SEMANTIC_SUFFIX, SplitInfo,
                                    instance_results_path, load_instance_results,
                                    load_semantic_results, semantic_results_path)
from custom_modules.vision import annotation_path
from .ablation import STAGES
from .calibration import ScoreCalibration, load_calibration
from .ensemble import pool_by_image
from .files import select_datasets
from .fusion import fuse_detections
from .nms import NMSSettings, select_detections
from .weights import dataset_maps, map_weights

HTC_ROW, FUSED_ROW, TWO_ROW, THREE_ROW = (name for _, name in STAGES)
Stats = dict[str, float]
TIE_DIGITS = 4  # criterion rounded to 0.01 points (fractions to 4 decimals)

# defaults of the grids; the paper's setting first along every axis
FUSION_THRS = (0.5, 0.4, 0.3, 0.2, 0.1)
RULES = ('all', 'cross-model', 'none', 'soft')
IOU_THRS = (0.5, 0.6, 0.7, 0.8)
CAPS = ('image:100', 'category:100', 'none')
MAPPINGS = ('ratio', 'linear', 'rank', 'equal')


@dataclass(frozen=True)
class SweepRun:
    """The predictions of one labelled split, and the models' metrics files."""
    name: str
    data_root: Path
    split: str
    model_dirs: tuple[Path, Path, Path]  # HTC, R50, ConvNeXt
    semantic_dir: Path
    metric_files: tuple[Path, Path, Path]
    calibration_dir: Path | None = None  # maps of HTC's TTA scores (tau1 applies through)


@dataclass(frozen=True)
class EnsembleSetting:
    """One cell of the ensemble grid."""
    nms: NMSSettings
    weight_mapping: str

    @property
    def cap(self) -> str:
        return cap_label(self.nms.max_per_img, self.nms.max_per_category)

    @property
    def iou(self) -> str:
        return '-' if self.nms.suppress == 'none' else f'{self.nms.iou_thr:g}'

    @property
    def label(self) -> str:
        return f'{self.nms.suppress} iou={self.iou} cap={self.cap} weights={self.weight_mapping}'


def parse_cap(text: str) -> tuple[int | None, int | None]:
    """``image:N`` (mmdet's max_per_img), ``category:N`` (per image and category, as COCO
    counts) or ``none`` -> (max_per_img, max_per_category)."""
    if text == 'none':
        return None, None
    scope, _, count = text.partition(':')
    if scope not in ('image', 'category') or not count.isdigit() or int(count) < 1:
        raise ValueError(f'cap must be image:N, category:N or none, got {text!r}')
    return (int(count), None) if scope == 'image' else (None, int(count))


def cap_label(max_per_img: int | None, max_per_category: int | None) -> str:
    caps = [f'image:{max_per_img}'] * (max_per_img is not None)
    caps += [f'category:{max_per_category}'] * (max_per_category is not None)
    return '+'.join(caps) or 'none'


def ensemble_grid(rules: Sequence[str] = RULES, iou_thrs: Sequence[float] = IOU_THRS,
                  caps: Sequence[str] = CAPS,
                  mappings: Sequence[str] = MAPPINGS) -> list[EnsembleSetting]:
    """Every combination, rule-major; ``none`` suppresses nothing, so it takes no IoU."""
    grid = []
    for rule in rules:
        for iou_thr in iou_thrs[:1] if rule == 'none' else iou_thrs:
            for cap in caps:
                for mapping in mappings:
                    grid.append(EnsembleSetting(NMSSettings(rule, iou_thr, *parse_cap(cap)),
                                                mapping))
    return grid


@dataclass
class Case:
    """One dataset of one run, loaded once."""
    key: str  # run/dataset, the tables' column
    gt: COCO
    htc: list[dict]
    semantic: dict[int, dict]
    others: list[list[dict]]  # R50, ConvNeXt
    maps: list[float]  # each instance model's mAP in its metrics file
    sources: tuple[Path, Path]  # HTC and semantic files, for fusion's messages
    calibration: ScoreCalibration  # of HTC's scores (the identity without one)


def load_cases(runs: Sequence[SweepRun]) -> list[Case]:
    """Every dataset present in all four prediction folders of each run, validated."""
    cases = []
    for run in runs:
        names = select_datasets([(d, INSTANCE_SUFFIX) for d in run.model_dirs]
                                + [(run.semantic_dir, SEMANTIC_SUFFIX)], None,
                                require_all=True)
        maps = [dataset_maps(path, names) for path in run.metric_files]
        for name in names:
            ann_file = annotation_path(run.data_root, name, run.split)
            split = SplitInfo(ann_file)
            htc, *others = [load_instance_results(instance_results_path(d, name), split)
                            for d in run.model_dirs]
            sem_path = semantic_results_path(run.semantic_dir, name)
            calibration = (load_calibration(run.calibration_dir, name) if run.calibration_dir
                           else ScoreCalibration())
            cases.append(Case(f'{run.name}/{name}', ground_truth(ann_file), htc,
                              load_semantic_results(sem_path, split), others,
                              [m[name] for m in maps],
                              (instance_results_path(run.model_dirs[0], name), sem_path),
                              calibration))
    return cases


def score(case: Case, detections: list[dict]) -> Stats:
    """COCO mAP and mAR of ``detections`` (copied: ``loadRes`` writes into them)."""
    return coco_map_mar(case.gt, [dict(d) for d in detections])


def criterion(per_case: dict[str, Stats]) -> float:
    """The mean over cases of (mAP + mAR) / 2, rounded to the tables' precision."""
    return round(average_metrics(per_case)['score'], TIE_DIGITS)


def first_best(scores: Sequence[float]) -> int:
    """Index of the highest score; ties to the earliest."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


@dataclass
class SweepResult:
    """Every figure of a sweep (fractions), and the settings the criterion picks."""
    htc: dict[str, Stats]
    fusion: dict[float, dict[str, Stats]]  # tau1 -> case -> stats
    score_thr: float  # the tau1 the ensemble rows used
    ensemble: dict[EnsembleSetting, dict[str, dict[str, Stats]]]  # -> row -> case -> stats
    best_thr: float = field(init=False)
    best: EnsembleSetting = field(init=False)

    def __post_init__(self) -> None:
        thrs = list(self.fusion)
        self.best_thr = thrs[first_best([criterion(self.fusion[t]) for t in thrs])]
        settings = list(self.ensemble)
        self.best = settings[first_best([criterion(self.ensemble[s][THREE_ROW])
                                         for s in settings])]


def fuse_case(case: Case, score_thr: float, rule: str) -> list[dict]:
    """HTC fused where its (calibrated) score exceeds ``score_thr``."""
    return fuse_detections(case.htc, case.semantic, *case.sources,
                           case.calibration.threshold(score_thr), rule)


# The cases of the running sweep, inherited by forked workers, so that only job
# descriptions and figures cross process boundaries.
_CASES: list[Case] = []


@dataclass(frozen=True)
class RowJob:
    """One ensemble row (``models`` = 2 or 3 inputs) of one case, under the whole grid."""
    case: int
    models: int
    score_thr: float
    fusion_rule: str
    grid: tuple[EnsembleSetting, ...]


def score_row(job: RowJob) -> list[Stats]:
    """The row's figures for every setting; the pooled mask IoUs are computed once."""
    case = _CASES[job.case]
    inputs = [fuse_case(case, job.score_thr, job.fusion_rule), *case.others][:job.models]
    images = list(pool_by_image(inputs).values())
    ious = {agnostic: [image.group_ious(agnostic) for image in images]
            for agnostic in {setting.nms.class_agnostic for setting in job.grid}}
    figures = []
    for setting in job.grid:
        weights = np.asarray(map_weights(case.maps[:job.models], setting.weight_mapping))
        kept = []
        for image, image_ious in zip(images, ious[setting.nms.class_agnostic]):
            indices, scores = select_detections(image, weights, setting.nms, image_ious)
            kept += [dict(image.detections[i], score=float(s)) for i, s in zip(indices, scores)]
        figures.append(score(case, kept))
    return figures


def sweep(runs: Sequence[SweepRun], fusion_thrs: Sequence[float] = FUSION_THRS,
          grid: Sequence[EnsembleSetting] | None = None, score_thr: float | None = None,
          fusion_rule: str = 'box', workers: int = 1) -> SweepResult:
    """Score the fusion thresholds, then the ensemble grid with HTC fused at ``score_thr``
    (default: the best of ``fusion_thrs``; a given one is scored too). ``workers`` > 1
    spreads the (case, row) jobs of the grid over forked processes."""
    global _CASES
    if not fusion_thrs:
        raise ValueError('no fusion thresholds to sweep')
    grid = tuple(ensemble_grid() if grid is None else grid)
    if not grid:
        raise ValueError('the ensemble grid is empty')
    if len({run.name for run in runs}) != len(runs):
        raise ValueError(f'run names must differ, got {[run.name for run in runs]}')
    cases = load_cases(runs)
    if score_thr is not None and score_thr not in fusion_thrs:
        fusion_thrs = [*fusion_thrs, score_thr]
    htc = {case.key: score(case, case.htc) for case in cases}
    fusion = {thr: {case.key: score(case, fuse_case(case, thr, fusion_rule)) for case in cases}
              for thr in tqdm(fusion_thrs, desc='fusion thresholds', unit='thr')}
    chosen = score_thr
    if chosen is None:
        chosen = list(fusion)[first_best([criterion(fusion[t]) for t in fusion])]
    ensemble: dict[EnsembleSetting, dict[str, dict[str, Stats]]] = {
        setting: {TWO_ROW: {}, THREE_ROW: {}} for setting in grid}
    jobs = [RowJob(i, models, chosen, fusion_rule, grid)
            for i in range(len(cases)) for models in (2, 3)]
    use_pool = workers > 1 and len(jobs) > 1
    _CASES = cases
    try:
        with (get_context('fork').Pool(workers) if use_pool else nullcontext()) as pool, \
                tqdm(total=len(jobs), desc='ensemble grid', unit='row') as progress:
            for job, figures in zip(jobs, (pool.imap if use_pool else map)(score_row, jobs)):
                row = TWO_ROW if job.models == 2 else THREE_ROW
                for setting, stats in zip(grid, figures):
                    ensemble[setting][row][cases[job.case].key] = stats
                progress.update()
    finally:
        _CASES = []
    return SweepResult(htc, fusion, chosen, ensemble)
