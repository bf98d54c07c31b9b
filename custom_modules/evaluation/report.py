"""Result tables laid out like the paper's Tables 2 and 3.

Datasets are columns; each row group (a model, or a stage of the ensemble) has an mAP line
and an mAR line, followed by the mean over datasets ("Average") and, on the mAP line,
(mAP + mAR) / 2. Inputs are fractions in [0, 1]; tables show percentages.

``groups`` maps a row-group name to ``dataset -> {"mAP": f, "mAR": f, ...}``.
"""
from __future__ import annotations

import csv
import html
import io
from pathlib import Path
from typing import Mapping, Sequence

from custom_modules.formats import atomic_output

Groups = Mapping[str, Mapping[str, Mapping[str, float]]]
METRICS = ('mAP', 'mAR')
AVERAGE_COLUMN = 'Average'
SCORE_COLUMN = '(mAP+mAR)/2'
MISSING = '-'
NUM_CLASS = ' class="num"'


def average_metrics(per_dataset: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Mean mAP and mAR over datasets, and their mean ``score`` (the paper's last column)."""
    if not per_dataset:
        raise ValueError('no datasets to average')
    means = {m: sum(d[m] for d in per_dataset.values()) / len(per_dataset) for m in METRICS}
    return {**means, 'score': (means['mAP'] + means['mAR']) / 2}


def _columns(groups: Groups, datasets: Sequence[str] | None) -> list[str]:
    """``datasets`` or, by default, every dataset of any group in first-seen order."""
    if datasets is not None:
        return list(datasets)
    return list(dict.fromkeys(d for per_dataset in groups.values() for d in per_dataset))


def table_rows(groups: Groups, datasets: Sequence[str] | None = None) -> list[list[str]]:
    """Header and two lines per group, cells formatted as percentages.

    Dataset cells have one decimal, averages two (as in the paper); a dataset a group
    lacks shows ``-`` and its averages are over the datasets it has.
    """
    columns = _columns(groups, datasets)
    rows = [['Model', 'Metric', *columns, AVERAGE_COLUMN, SCORE_COLUMN]]
    for name, per_dataset in groups.items():
        present = {d: per_dataset[d] for d in columns if d in per_dataset}
        average = {k: f'{100 * v:.2f}' for k, v in average_metrics(present).items()} \
            if present else dict.fromkeys((*METRICS, 'score'), MISSING)
        for metric in METRICS:
            cells = [f'{100 * present[d][metric]:.1f}' if d in present else MISSING
                     for d in columns]
            score = average['score'] if metric == METRICS[0] else ''
            rows.append([name, metric, *cells, average[metric], score])
    return rows


def _blank_repeated_names(rows: list[list[str]]) -> list[list[str]]:
    """Show a group's name on its first line only (as the paper does)."""
    out = [rows[0]]
    for i, row in enumerate(rows[1:], start=1):
        repeated = i > 1 and row[0] == rows[i - 1][0]
        out.append(['' if repeated else row[0], *row[1:]])
    return out


def render_markdown(groups: Groups, datasets: Sequence[str] | None = None) -> str:
    rows = _blank_repeated_names(table_rows(groups, datasets))
    lines = ['| ' + ' | '.join(rows[0]) + ' |',
             '|' + '|'.join([' --- '] * 2 + [' ---: '] * (len(rows[0]) - 2)) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows[1:]]
    return '\n'.join(lines) + '\n'


def render_csv(groups: Groups, datasets: Sequence[str] | None = None) -> str:
    """CSV with the group name on every line, so each line stands alone."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator='\n').writerows(table_rows(groups, datasets))
    return buffer.getvalue()


def render_text(groups: Groups, datasets: Sequence[str] | None = None) -> str:
    """Aligned plain-text table for the terminal."""
    rows = _blank_repeated_names(table_rows(groups, datasets))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(w) if i < 2 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows) + '\n'


def render_html(groups: Groups, datasets: Sequence[str] | None = None) -> str:
    """An HTML ``<table>`` (class ``metrics``; number cells class ``num``)."""
    rows = _blank_repeated_names(table_rows(groups, datasets))

    def cells(row: list[str], tag: str) -> str:
        return ''.join(f'<{tag}{NUM_CLASS if i >= 2 else ""}>{html.escape(cell)}</{tag}>'
                       for i, cell in enumerate(row))

    body = ''.join(f'<tr>{cells(row, "td")}</tr>' for row in rows[1:])
    return (f'<table class="metrics"><thead><tr>{cells(rows[0], "th")}</tr></thead>'
            f'<tbody>{body}</tbody></table>')


def write_tables(groups: Groups, stem: str | Path,
                 datasets: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.csv`` atomically; return their paths."""
    stem = Path(stem)
    paths = stem.with_suffix('.md'), stem.with_suffix('.csv')
    for path, render in zip(paths, (render_markdown, render_csv)):
        with atomic_output(path) as f:
            f.write(render(groups, datasets))
    return paths
