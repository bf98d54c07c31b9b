"""The pipeline's model bags: per dataset, the models and settings of its final stage
(see :mod:`custom_modules.inference.bag`), written to ``<work_dir>/bags/<Dataset>.json``
so that ``tools/infer.py`` repeats the final prediction on new images."""
from __future__ import annotations

from pathlib import Path

from custom_modules.formats import FormatError, load_json
from custom_modules.inference.bag import Bag, BagModel, Fusion, InstanceModel, write_bag
from custom_modules.postprocess import weights_from_metrics
from custom_modules.vision import annotation_path, dataset_classes
from custom_modules.vision.selection import default_train_split

from .plan import ModelSpec
from .stages import PipelineContext

# What fuse_and_ensemble runs with (tools/fuse_semantic.py's and tools/ensemble.py's
# defaults), as keyword arguments of fuse_image and ensemble_detections.
FUSION_SETTINGS = dict(score_thr=0.5, rule='box')
ENSEMBLE_SETTINGS = dict(iou_thr=0.5, max_per_img=100, class_agnostic=False)


def final_train_split(ctx: PipelineContext, model: ModelSpec, weights_from_val: bool) -> str:
    """The training split of the run that predicted the inference split, as
    ``train_and_predict`` chooses it: the train-only run when the preset lets it predict,
    else the train+val run (always for the semantic model)."""
    reuse = weights_from_val and not ctx.preset.separate_final_models
    return 'train' if reuse and not model.semantic else 'train_val'


def trained_model(ctx: PipelineContext, model: ModelSpec, dataset: str,
                  train_split: str) -> BagModel:
    """The dumped config and the last checkpoint of a finished training run."""
    run_dir = ctx.run_dir(model, train_split, dataset)
    last = run_dir / 'last_checkpoint'
    if not last.is_file():
        raise FormatError(f'{last}: no training run of {model.name} on {dataset}')
    # the runner saves checkpoints in its work dir and dumps the config there under the
    # config file's name
    return BagModel(model.name, run_dir / Path(model.config(ctx.preset_name)).name,
                    run_dir / Path(last.read_text().strip()).name)


def label_categories(ann_file: Path, classes: tuple[str, ...]) -> tuple[dict, ...]:
    """``{"id", "name"}`` of each label, mapped as MMDetection's ``CocoDataset`` and
    ``CocoMetric`` map them: the file's categories in file order, those named in
    ``classes``."""
    return tuple(dict(id=int(c['id']), name=str(c['name']))
                 for c in load_json(ann_file)['categories'] if str(c['name']) in classes)


def pipeline_bag(ctx: PipelineContext, dataset: str, weights: list[float],
                 weights_from_val: bool) -> Bag:
    """The bag of one dataset: the instance models in ensemble order with ``weights``
    and TTA (as the pipeline predicts), fusion into the first one when there is a
    semantic model, the ensemble's settings."""
    first, *_ = ctx.instance_models
    instance_models = []
    for model, weight in zip(ctx.instance_models, weights):
        trained = trained_model(ctx, model, dataset, final_train_split(ctx, model,
                                                                       weights_from_val))
        instance_models.append(InstanceModel(trained.name, trained.config, trained.checkpoint,
                                             weight=weight, tta=True))
    semantic = ctx.semantic_model
    classes = dataset_classes(dataset, annotation_path(
        ctx.data_root, dataset, default_train_split(ctx.data_root, dataset)))
    return Bag(
        dataset=dataset,
        categories=label_categories(annotation_path(ctx.data_root, dataset, 'inference'),
                                    classes),
        instance_models=tuple(instance_models),
        semantic_model=(trained_model(ctx, semantic, dataset, 'train_val')
                        if semantic else None),
        fusion=Fusion(into=first.name, **FUSION_SETTINGS) if semantic else None,
        ensemble=dict(ENSEMBLE_SETTINGS),
        source=dict(work_dir=str(ctx.work_dir.absolute()),
                    data_root=str(ctx.data_root.absolute()), preset=ctx.preset_name,
                    seed=ctx.seed, weights='val mAP / best val mAP' if weights_from_val
                    else 'equal'))


def write_bags(ctx: PipelineContext, weight_files: list[Path]) -> dict[str, Path]:
    """Write ``<work_dir>/bags/<Dataset>.json`` (and its model folder) for every dataset,
    with the ensemble weights ``fuse_and_ensemble`` used (from ``weight_files``, or all 1)."""
    num_models = len(ctx.instance_models)
    weights = (weights_from_metrics(weight_files, ctx.datasets) if weight_files
               else {d: [1.0] * num_models for d in ctx.datasets})
    written = {}
    for dataset in ctx.datasets:
        path = ctx.work_dir / 'bags' / f'{dataset}.json'
        write_bag(pipeline_bag(ctx, dataset, weights[dataset], bool(weight_files)), path)
        written[dataset] = path
    return written
