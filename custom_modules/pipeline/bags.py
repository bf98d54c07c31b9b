"""The pipeline's model bags: per dataset, the models and settings of its final stage
(see :mod:`custom_modules.inference.bag`), written to ``<work_dir>/bags/<Dataset>.json``
so that ``tools/infer.py`` repeats the final prediction on new images."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from custom_modules.formats import FormatError, load_json
from custom_modules.inference.bag import Bag, BagModel, Fusion, InstanceModel, write_bag
from custom_modules.postprocess import weights_from_metrics
from custom_modules.postprocess.calibration import calibrated_thresholds
from custom_modules.vision import annotation_path, dataset_classes

from .plan import ModelSpec
from .stages import PipelineContext, calibration_dir, final_train_split


def trained_model(ctx: PipelineContext, model: ModelSpec, dataset: str) -> BagModel:
    """The dumped config and the last checkpoint of the run that predicted the inference
    split."""
    run_dir = ctx.run_dir(model, final_train_split(ctx), dataset)
    last = run_dir / 'last_checkpoint'
    if not last.is_file():
        raise FormatError(f'{last}: no training run of {model.name} on {dataset}')
    # the runner saves checkpoints in its work dir and dumps the config there under the
    # config file's name
    return BagModel(model.name, run_dir / Path(model.config(ctx.preset_name)).name,
                    run_dir / Path(last.read_text().strip()).name)


def label_categories(ann_file: Path, classes: tuple[str, ...]) -> tuple[dict, ...]:
    """``{"id", "name"}`` of each label, in label (class) order, with the ids of
    ``ann_file``'s categories of those names (classes map to ids by name)."""
    ids = {str(c['name']): int(c['id']) for c in load_json(ann_file)['categories']}
    return tuple(dict(id=ids[name], name=name) for name in classes)


def pipeline_bag(ctx: PipelineContext, dataset: str, weights: list[float],
                 weights_from_val: bool) -> Bag:
    """The bag of one dataset: the instance models in ensemble order with ``weights``
    and TTA as the pipeline predicted, fusion into the first one when there is a
    semantic model (above the TTA score that its calibration sends to tau1, if any), the
    ensemble's settings."""
    first, *_ = ctx.instance_models
    settings = ctx.postprocess
    instance_models = []
    for model, weight in zip(ctx.instance_models, weights):
        trained = trained_model(ctx, model, dataset)
        instance_models.append(InstanceModel(trained.name, trained.config, trained.checkpoint,
                                             weight=weight, tta=ctx.tta))
    calibrated = calibration_dir(ctx)
    fusion_thr = calibrated_thresholds(calibrated, [dataset], settings.fusion_thr)[dataset]
    semantic = ctx.semantic_model
    classes = dataset_classes(ctx.data_root, dataset).names
    return Bag(
        dataset=dataset,
        categories=label_categories(annotation_path(ctx.data_root, dataset, 'inference'),
                                    classes),
        instance_models=tuple(instance_models),
        semantic_model=trained_model(ctx, semantic, dataset) if semantic else None,
        fusion=(Fusion(into=first.name, score_thr=fusion_thr,
                       rule=settings.fusion_rule) if semantic else None),
        ensemble=asdict(settings.nms),
        source=dict(work_dir=str(ctx.work_dir.absolute()),
                    data_root=str(ctx.data_root.absolute()), preset=ctx.preset_name,
                    seed=ctx.seed, weights=(f'val mAP, {settings.weight_mapping} mapping'
                                            if weights_from_val else 'equal'),
                    fusion_thr=(f'TTA score calibrated to tau1 = {settings.fusion_thr} on val'
                                if calibrated else f'tau1 = {settings.fusion_thr}')))


def write_bags(ctx: PipelineContext, weight_files: list[Path]) -> dict[str, Path]:
    """Write ``<work_dir>/bags/<Dataset>.json`` (and its model folder) for every dataset,
    with the ensemble weights the ensemble used (from ``weight_files``, or all 1)."""
    num_models = len(ctx.instance_models)
    weights = (weights_from_metrics(weight_files, ctx.datasets, ctx.postprocess.weight_mapping)
               if weight_files else {d: [1.0] * num_models for d in ctx.datasets})
    written = {}
    for dataset in ctx.datasets:
        path = ctx.work_dir / 'bags' / f'{dataset}.json'
        write_bag(pipeline_bag(ctx, dataset, weights[dataset], bool(weight_files)), path)
        written[dataset] = path
    return written
