"""Self-training rounds (``tools/run_pipeline.py --pseudo-rounds N``), beyond the paper.

Round ``r`` takes round ``r - 1``'s final ensemble: on val (scored against val's ground
truth) it sets the score threshold, on the inference split it gives the pseudo labels
(tools/pseudo_label.py). Every model of the round then trains again, from the same
initial weights, schedule and seed as round 0, on its labelled split and the
pseudo-labelled images (each weighing as much as a labelled one), and predicts, fuses and
ensembles as round 0 did. A round lives in ``<work dir>/round<r>/`` with the layout of the
work dir itself (its own models, preds, metrics, records and logs). A dataset that gets no
pseudo labels (no threshold reaches the target on val) would train the same models again:
it leaves the rounds instead, and its previous final predictions are carried into the
round's ensemble folder.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from custom_modules.formats import instance_results_path
from custom_modules.postprocess.pseudo_labels import pseudo_label_path

from .runner import StageRunner, Step, python_tool, step
from .stages import PipelineContext, fuse_and_ensemble, train_and_predict, val_weights


@dataclass(frozen=True)
class RoundResult:
    """What the next round and the final stages read from a round."""
    ctx: PipelineContext
    weight_steps: list[Step]
    final: Step  # the step that wrote the round's final predictions of the inference split


def pseudo_label_step(prev: RoundResult, out: Path, target_precision: float) -> Step:
    """Pseudo labels into ``out`` from ``prev``'s ensembles of val and of the inference
    split."""
    ctx = prev.ctx
    val_final = fuse_and_ensemble(ctx, prev.weight_steps, split='val')
    labels = step('pseudo', f'labels into {out.parent.name}', python_tool(
        'tools/pseudo_label.py', '--data-root', ctx.data_root, '--val-preds',
        ctx.preds('val', 'ensemble'), '--preds', ctx.preds('inference', 'ensemble'), '--out',
        out, '--datasets', *ctx.datasets, '--target-precision', target_precision),
        outputs=[out / 'pseudo_labels.json'], inputs=ctx.annotation_files(['val']),
        after=[val_final, prev.final])
    ctx.runner.run(labels)
    return labels


def carry_predictions(prev: RoundResult, ctx: PipelineContext, datasets: list[str],
                      final: Step) -> Step:
    """Copy ``prev``'s final predictions of ``datasets`` beside ``final``'s (the round's
    ensemble folder), so that one folder holds the round's result for every dataset."""
    source = prev.final.outputs[0].parent
    target = ctx.preds('inference', 'ensemble')
    target.mkdir(parents=True, exist_ok=True)
    carried = step('carry', f'previous predictions of {", ".join(datasets)}',
                   ['cp', *(instance_results_path(source, d) for d in datasets), target],
                   outputs=[*final.outputs, *(instance_results_path(target, d) for d in datasets)],
                   after=[prev.final, final])
    ctx.runner.run(carried)
    return carried


def pseudo_label_round(prev: RoundResult, folder: Path, check: Step,
                       target_precision: float) -> RoundResult:
    """Write the round's pseudo labels, then train, predict, weigh, fuse and ensemble with
    them the datasets that got some, everything under ``folder`` (``<work dir>/round<r>``);
    ``prev`` itself when no dataset got any."""
    out = folder / 'pseudo_labels'
    labels = pseudo_label_step(prev, out, target_precision)
    labelled = [d for d in prev.ctx.datasets if pseudo_label_path(out, d).is_file()]
    if not labelled:
        print(f'[pseudo] no dataset got pseudo labels: {folder.name} keeps the previous round')
        return prev
    ctx = replace(prev.ctx, work_dir=folder, runner=StageRunner(folder), predictions={},
                  pseudo_labels=labels, datasets=labelled, calibration=None)
    train_and_predict(ctx, check, weights_from_val=True)
    weight_steps = val_weights(ctx)
    final = fuse_and_ensemble(ctx, weight_steps)
    others = [d for d in prev.ctx.datasets if d not in labelled]
    if others:
        final = carry_predictions(prev, ctx, others, final)
    return RoundResult(ctx, weight_steps, final)
