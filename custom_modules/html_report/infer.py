"""The report of a ``tools/infer.py`` run: what ran (bag, settings, speed), detections per
class, failed images, and a gallery of the overlays, images with the most confident
detections first."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from custom_modules.inference.bag import Bag
from custom_modules.inference.run import PREDICTIONS_NAME, RunSummary
from custom_modules.visualization import class_colours

from .page import (esc, facts, href, image, link, listed, nav, section, swatch, table,
                   write_page)

MAX_GALLERY = 200  # the page stays quick to open; every image is in predictions.json


def _bag_rows(summary: RunSummary, bag: Bag) -> list[tuple[str, str]]:
    models = ', '.join(f'{m.name} (weight {m.weight:.3g}, {"TTA" if m.tta else "no TTA"})'
                       for m in bag.instance_models)
    fusion = (f'{bag.semantic_model.name} into {bag.fusion.into} above score '
              f'{bag.fusion.score_thr:g} ({bag.fusion.rule} rule)' if bag.fusion else 'none')
    ensemble = ', '.join(f'{k}={v}' for k, v in bag.ensemble.items()) or 'defaults'
    return [('bag', esc(summary.bag_path)), ('dataset', esc(bag.dataset)),
            ('instance models', esc(models)), ('semantic fusion', esc(fusion)),
            ('ensemble', esc(ensemble))]


def _speed_rows(summary: RunSummary) -> list[tuple[str, str]]:
    return [('images predicted', esc(len(summary.images))),
            ('images failed', esc(len(summary.failed))),
            ('model loading (s)', f'{summary.load_s:.1f}'),
            ('prediction (s)', f'{summary.predict_s:.1f}'),
            ('images / s', f'{summary.images_per_s:.3f}'),
            ('shown: detections scored above', f'{summary.score_thr:g}')]


def _class_rows(summary: RunSummary, bag: Bag) -> list[list[str]]:
    colours = class_colours(len(bag.categories))
    detections = Counter(d['category_id'] for img in summary.images for d in img.shown)
    images = Counter(cid for img in summary.images
                     for cid in {d['category_id'] for d in img.shown})
    return [[swatch(colour) + esc(c['name']), esc(c['id']), esc(detections[c['id']]),
             esc(images[c['id']])] for c, colour in zip(bag.categories, colours)]


def _card(img, names: dict[int, str], out_dir: Path, report_dir: Path) -> str:
    colours = dict(zip(names, class_colours(len(names))))
    rows = [[swatch(colours[d['category_id']]) + esc(names[d['category_id']]),
             f'{d["score"]:.3f}',
             esc(', '.join(f'{v:.0f}' for v in d['bbox']))]
            for d in sorted(img.shown, key=lambda d: -d['score'])]
    picture = (image(href(out_dir / img.overlay, report_dir), img.file_name, lazy=True)
               if img.overlay else '')
    return (f'<div class="card">{picture}<p><b>{esc(img.file_name)}</b> '
            f'({img.width} x {img.height}): {len(img.shown)} shown of '
            f'{img.num_detections} detections</p>'
            + listed(['class', 'score', 'box x, y, w, h'], rows, numeric=(1, )) + '</div>')


def write_infer_report(out_dir: Path, summary: RunSummary, bag: Bag) -> Path:
    """Write ``out_dir/report/index.html`` for the run in ``out_dir``."""
    report_dir = out_dir / 'report'
    names = {c['id']: c['name'] for c in bag.categories}
    ranked = sorted(summary.images, key=lambda img: (-img.top_score, img.id))
    shown = ranked[:MAX_GALLERY]
    failed = (table(['file', 'error'], [[esc(f['file_name']), esc(f['error'])]
                                        for f in summary.failed])
              if summary.failed else '<p>None.</p>')
    predictions = link(href(out_dir / PREDICTIONS_NAME, report_dir), PREDICTIONS_NAME)
    body = ''.join([
        nav([('run', 'Run'), ('classes', 'Classes'), ('failed', 'Failed images'),
             ('gallery', 'Images')]),
        section('run', 'Run', facts(_bag_rows(summary, bag) + _speed_rows(summary)),
                f'<p>All detections: {predictions}</p>'),
        section('classes', 'Detections per class',
                table(['class', 'category id', 'detections shown', 'images'],
                      _class_rows(summary, bag), numeric=(1, 2, 3))),
        section('failed', 'Failed images', failed),
        section('gallery', 'Images, most confident detections first',
                f'<p>{len(shown)} of {len(ranked)} images shown; every detection is in '
                f'{predictions}.</p>' if len(shown) < len(ranked) else '',
                '<div class="gallery">'
                + ''.join(_card(img, names, out_dir, report_dir) for img in shown) + '</div>'),
    ])
    return write_page(report_dir / 'index.html',
                      f'{bag.dataset}: {len(summary.images)} images predicted', body)
