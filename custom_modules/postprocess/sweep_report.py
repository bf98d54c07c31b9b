"""The sweep's table: Markdown for reading (averages, ranked, and the chosen setting's
Table 3 per dataset) and CSV with every figure (per case and averaged)."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from custom_modules.evaluation import average_metrics, render_markdown
from custom_modules.formats import atomic_output
from .sweep import (FUSED_ROW, HTC_ROW, THREE_ROW, TWO_ROW, EnsembleSetting, Stats,
                    SweepResult, SweepRun, criterion)

AVERAGE = 'Average'
CSV_HEADER = ('row', 'tau1', 'suppress', 'iou_thr', 'cap', 'weights', 'case', 'mAP', 'mAR')


def _pct(value: float) -> str:
    return f'{100 * value:.2f}'


def _line(cells: Sequence[object]) -> str:
    return '| ' + ' | '.join(map(str, cells)) + ' |'


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [_line(header), '|' + '|'.join([' --- '] * len(header)) + '|',
            *(_line(row) for row in rows)]


def _bold_if(cells: list[object], bold: bool) -> list[object]:
    return [f'**{c}**' for c in cells] if bold else cells


def _fusion_section(result: SweepResult) -> list[str]:
    rows = [[f'{HTC_ROW} (no fusion)', *_averages(result.htc)]]
    for thr, per_case in result.fusion.items():
        rows.append(_bold_if([f'{thr:g}', *_averages(per_case)], thr == result.best_thr))
    return [f'## Fusion threshold tau1 ({FUSED_ROW})', '',
            *_table(['tau1', 'mAP', 'mAR', '(mAP+mAR)/2'], rows), '',
            f'Best on this split: tau1 = {result.best_thr:g}. The ensemble rows below take '
            f'HTC fused at tau1 = {result.score_thr:g}.', '']


def _averages(per_case: dict[str, Stats]) -> list[str]:
    means = average_metrics(per_case)
    return [_pct(means['mAP']), _pct(means['mAR']), _pct(means['score'])]


def _ensemble_section(result: SweepResult) -> list[str]:
    settings = sorted(result.ensemble, key=lambda s: -criterion(result.ensemble[s][THREE_ROW]))
    rows = []
    for rank, setting in enumerate(settings, start=1):
        two = average_metrics(result.ensemble[setting][TWO_ROW])
        three = average_metrics(result.ensemble[setting][THREE_ROW])
        cells: list[object] = [rank, setting.nms.suppress, setting.iou, setting.cap,
                               setting.weight_mapping, _pct(two['mAP']), _pct(two['mAR']),
                               _pct(three['mAP']), _pct(three['mAR']), _pct(three['score'])]
        rows.append(_bold_if(cells, setting == result.best))
    header = ['rank', 'suppress', 'IoU thr', 'cap', 'weights', '+R50 mAP', '+R50 mAR',
              '+R50+ConvNeXt mAP', '+R50+ConvNeXt mAR', '(mAP+mAR)/2']
    return [f'## Ensemble (HTC fused at tau1 = {result.score_thr:g})', '',
            *_table(header, rows), '', f'Best on this split: {result.best.label}.', '']


def chosen_table3(result: SweepResult) -> dict[str, dict[str, Stats]]:
    """Table 3's rows with the chosen tau1 and the best ensemble setting."""
    return {HTC_ROW: result.htc, FUSED_ROW: result.fusion[result.score_thr],
            **result.ensemble[result.best]}


def render_sweep_markdown(result: SweepResult, runs: Sequence[SweepRun]) -> str:
    cases = len(result.htc)
    lines = ['# Post-processing sweep', '',
             'Runs: ' + '; '.join(f'`{run.name}` ({run.data_root}, split {run.split})'
                                  for run in runs) + '.', '',
             f'Criterion: the mean over the {cases} (run, dataset) cases of (mAP + mAR) / 2 of '
             f'{FUSED_ROW} (tau1) and of {THREE_ROW} (ensemble); ties to 0.01 points go to '
             'the setting listed first. Figures are averages over the cases, in %.', '',
             *_fusion_section(result), *_ensemble_section(result),
             f'## Table 3 with tau1 = {result.score_thr:g} and {result.best.label}', '',
             render_markdown(chosen_table3(result))]
    return '\n'.join(lines)


def _csv_lines(row: str, tau1: float | None, setting: EnsembleSetting | None,
               per_case: dict[str, Stats]) -> list[list[object]]:
    fixed: list[object] = [row, '' if tau1 is None else f'{tau1:g}']
    fixed += (['', '', '', ''] if setting is None else
              [setting.nms.suppress, setting.iou, setting.cap, setting.weight_mapping])
    means = average_metrics(per_case)
    return [[*fixed, case, f'{stats["mAP"]:.6f}', f'{stats["mAR"]:.6f}']
            for case, stats in [*per_case.items(), (AVERAGE, means)]]


def render_sweep_csv(result: SweepResult) -> str:
    """One line per (row, setting, case) and per (row, setting) average, as fractions."""
    lines = [list(CSV_HEADER), *_csv_lines(HTC_ROW, None, None, result.htc)]
    for thr, per_case in result.fusion.items():
        lines += _csv_lines(FUSED_ROW, thr, None, per_case)
    for setting, rows in result.ensemble.items():
        for row, per_case in rows.items():
            lines += _csv_lines(row, result.score_thr, setting, per_case)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator='\n').writerows(lines)
    return buffer.getvalue()


def write_sweep(result: SweepResult, runs: Sequence[SweepRun],
                out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``sweep.md`` and ``sweep.csv`` atomically into ``out_dir``."""
    paths = Path(out_dir) / 'sweep.md', Path(out_dir) / 'sweep.csv'
    for path, text in zip(paths, (render_sweep_markdown(result, runs),
                                  render_sweep_csv(result))):
        with atomic_output(path) as f:
            f.write(text)
    return paths
