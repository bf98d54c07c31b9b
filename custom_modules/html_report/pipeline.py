"""The report of a pipeline run (``<work_dir>/report/index.html``): the paper's tables for
the run (Table 2: each instance model alone; Table 3: the post-processing stages) with the
chart, the time and log of every stage, and per dataset a gallery of ground truth beside
the final prediction, the images with the most missed or false defects first."""
from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path

import mmcv

from custom_modules.evaluation import ground_truth, image_errors, render_html
from custom_modules.formats import SplitInfo, instance_results_path, load_instance_results, \
    load_json
from custom_modules.pipeline.bags import label_categories
from custom_modules.pipeline.stages import PipelineContext
from custom_modules.vision import annotation_path, dataset_classes, image_dir
from custom_modules.visualization import OverlayDrawer, class_colours

from .page import (esc, facts, href, image, link, listed, nav, section, swatch, table,
                   write_page)

GALLERY_WIDTH = 1600  # pixels of a gallery drawing (ground truth and prediction)


def _metrics_table(ctx: PipelineContext, split: str) -> str | None:
    """Table 2 layout of the instance models' scores on ``split``, if all were scored."""
    files = {m.name: ctx.metrics(split, m.name) for m in ctx.instance_models}
    if not all(f.is_file() for f in files.values()):
        return None
    return render_html({name: load_json(f)['datasets'] for name, f in files.items()},
                       ctx.datasets)


def _tables(ctx: PipelineContext, report_dir: Path) -> str:
    parts = []
    for split, title in (('inference_gt', 'on the hidden inference ground truth'),
                         ('val', 'on val (these scores weight the ensemble)')):
        rendered = _metrics_table(ctx, split)
        if rendered:
            parts.append(f'<h3>Table 2: each instance model alone, {esc(title)}</h3>{rendered}')
    table3 = ctx.work_dir / 'ablation' / 'table3.json'
    if table3.is_file():
        parts.append('<h3>Table 3: post-processing stages, on the hidden inference ground '
                     f'truth</h3>{render_html(load_json(table3), ctx.datasets)}')
        chart = table3.with_suffix('.png')
        if chart.is_file():
            shutil.copyfile(chart, report_dir / 'table3.png')
            parts.append(image('table3.png', 'Table 3 chart: average mAP and mAR per stage'))
    if not parts:
        parts.append('<p>No scores: the data has no labelled split to score on.</p>')
    parts.append('<p>mask AP / AR @[.5:.95] in %, as pycocotools computes them.</p>')
    return ''.join(parts)


def _outputs(ctx: PipelineContext, report_dir: Path) -> str:
    names = ['submission.zip', 'models.md', 'ablation.md', 'timings.json',
             *(f'bags/{d}.json' for d in ctx.datasets)]
    found = [ctx.work_dir / n for n in names if (ctx.work_dir / n).is_file()]
    models = ', '.join(m.name for m in ctx.instance_models)
    semantic = ctx.semantic_model.name if ctx.semantic_model else 'none'
    return (facts([
        ('data root', esc(ctx.data_root)), ('datasets', esc(', '.join(ctx.datasets))),
        ('instance models (ensemble order)', esc(models)), ('semantic model', esc(semantic)),
        ('preset, seed', esc(f'{ctx.preset_name}, {ctx.seed}'))])
        + '<p>Outputs: ' + ', '.join(link(href(p, report_dir), p.name if p.parent ==
                                          ctx.work_dir else f'{p.parent.name}/{p.name}')
                                     for p in found) + '</p>')


def _stages(ctx: PipelineContext, report_dir: Path) -> str:
    timings_file = ctx.work_dir / 'timings.json'
    timings = load_json(timings_file) if timings_file.is_file() else {
        'stages_s': dict(ctx.runner.timings), 'total_s': None}
    logs: dict[str, list[Path]] = defaultdict(list)
    for log in sorted((ctx.work_dir / 'logs').glob('*.log')):
        logs[log.name.split('_', 1)[0]].append(log)
    stages = list(dict.fromkeys([*timings['stages_s'], *logs]))
    rows = [[esc(stage), f'{timings["stages_s"].get(stage, 0.0):.0f}',
             ' '.join(link(href(log, report_dir), log.stem.split('_', 1)[-1].strip('_'))
                      for log in logs[stage])] for stage in stages]
    total = timings.get('total_s')
    note = (f'<p>Total {total:.0f} s wall. ' if total is not None else '<p>') + (
        'A stage\'s time adds up its runs (parallel jobs overlap); stages skipped as done '
        'before count 0.</p>')
    return table(['stage', 'time (s)', 'logs'], rows, numeric=(1, )) + note


def _card(picture: str, title: str, rows: list[list[str]], missed: str) -> str:
    return (f'<div class="card">{picture}<p><b>{title}</b></p>'
            + listed(['class', 'score', 'box x, y, w, h', 'found a defect'], rows,
                     numeric=(1, )) + missed + '</div>')


def _gallery(ctx: PipelineContext, dataset: str, scored: bool, report_dir: Path,
             size: int, score_thr: float) -> str:
    """The ``size`` worst images of ``dataset`` (most missed + false defects at IoU 0.5
    among the detections above ``score_thr``), drawn and listed."""
    split = 'inference_gt' if scored else 'inference'
    ann_file = annotation_path(ctx.data_root, dataset, split)
    info = SplitInfo(ann_file)
    categories = label_categories(ann_file, dataset_classes(ctx.data_root, dataset).names)
    colours = dict(zip((c['id'] for c in categories), class_colours(len(categories))))
    final = load_instance_results(instance_results_path(ctx.preds('inference', 'ensemble'),
                                                        dataset), info)
    shown: dict[int, list[dict]] = defaultdict(list)
    for det in final:
        if det['score'] > score_thr:
            shown[det['image_id']].append(det)
    gt = ground_truth(ann_file) if scored else None
    errors = image_errors(gt, [d for dets in shown.values() for d in dets]) if gt else None
    images = load_json(ann_file)['images']
    if errors is not None:
        images.sort(key=lambda img: (-errors[img['id']].errors,
                                     -len(errors[img['id']].missed), img['id']))
    else:
        images.sort(key=lambda img: (-max((d['score'] for d in shown[img['id']]), default=0),
                                     img['id']))
    drawer = OverlayDrawer(categories, score_thr)
    out_dir = report_dir / 'gallery' / dataset
    cards = []
    for img in images[:size]:
        dets = shown[img['id']]
        annotations = gt.loadAnns(gt.getAnnIds(imgIds=[img['id']])) if gt else None
        drawing = out_dir / f'{Path(img["file_name"]).stem}.jpg'
        pixels = mmcv.imread(image_dir(ctx.data_root, dataset, split) / img['file_name'],
                             channel_order='rgb')
        drawer.draw(pixels, dets, drawing, ground_truth=None if gt is None else [
            dict(a, rle=gt.annToRLE(a)) for a in annotations], max_width=GALLERY_WIDTH)
        found = errors[img['id']].matched if errors else [None] * len(dets)
        rows = [[swatch(colours[d['category_id']]) + esc(info.category_names[d['category_id']]),
                 f'{d["score"]:.3f}', esc(', '.join(f'{v:.0f}' for v in d['bbox'])),
                 '' if ok is None else ('<span class="good">yes</span>' if ok
                                        else '<span class="bad">false</span>')]
                for d, ok in sorted(zip(dets, found), key=lambda pair: -pair[0]['score'])]
        title = esc(img['file_name'])
        missed = ''
        if errors is not None:
            lost = gt.loadAnns(errors[img['id']].missed)
            title += (f': {len(lost)} missed, {errors[img["id"]].false} false '
                      f'(of {len(annotations)} defects)')
            if lost:
                missed = '<p class="bad">missed: ' + esc(', '.join(
                    info.category_names[a['category_id']] for a in lost)) + '</p>'
        caption = 'ground truth (left), final prediction (right)' if gt else 'final prediction'
        cards.append(_card(image(href(drawing, report_dir), f'{img["file_name"]}: {caption}'),
                           title, rows, missed))
    header = (f'<p>{min(size, len(images))} of {len(images)} images, ' + (
        'most missed or false defects first' if gt else 'most confident detections first')
        + f'; detections scored above {score_thr:g} are drawn and listed.</p>')
    return header + '<div class="gallery">' + ''.join(cards) + '</div>'


def write_pipeline_report(ctx: PipelineContext, gallery_size: int = 12,
                          score_thr: float = 0.3) -> Path:
    """Write ``<work_dir>/report/index.html`` (and its images) from the files of a
    pipeline work dir; the galleries compare with the hidden ground truth when every
    dataset has one (``inference_gt``)."""
    report_dir = ctx.work_dir / 'report'
    if report_dir.is_dir():
        shutil.rmtree(report_dir)
    report_dir.mkdir(parents=True)
    scored = all(annotation_path(ctx.data_root, d, 'inference_gt').is_file()
                 for d in ctx.datasets)
    sections = [('run', 'Run', _outputs(ctx, report_dir)),
                ('tables', 'Scores', _tables(ctx, report_dir)),
                ('stages', 'Time and log per stage', _stages(ctx, report_dir))]
    sections += [(f'gallery-{d}', f'{d}: ground truth and final prediction' if scored
                  else f'{d}: final prediction',
                  _gallery(ctx, d, scored, report_dir, gallery_size, score_thr))
                 for d in ctx.datasets]
    body = nav([(a, t.split(':')[0]) for a, t, _ in sections]) + ''.join(
        section(a, t, content) for a, t, content in sections)
    return write_page(report_dir / 'index.html', f'Pipeline report: {ctx.work_dir}', body)
