"""The challenge submission: one zip of every dataset's ``<Dataset>.segm.json``, written only
when each file passes the same checks as any results file of this project."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

from custom_modules.formats import (INSTANCE_SUFFIX, FormatError, SplitInfo, atomic_output,
                                    instance_results_path, load_instance_results)
from custom_modules.vision import annotation_path, available_datasets


def check_submission(pred_dir: str | Path, data_root: str | Path, split: str = 'inference',
                     datasets: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """The results files to submit and every problem found (one line each: the first
    problem of each file, and each missing or unexpected file)."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        return [], [f'{pred_dir}: prediction directory does not exist']
    names = list(dict.fromkeys(datasets)) if datasets else available_datasets(data_root, split)
    problems = []
    if not names:
        problems.append(f'{data_root}: no dataset has a {split} split')
    if not datasets:
        for path in sorted(pred_dir.glob(f'*{INSTANCE_SUFFIX}')):
            if path.name[:-len(INSTANCE_SUFFIX)] not in names:
                problems.append(f'{path}: no {split} split of this dataset in {data_root}')
    files = []
    for name in names:
        path = instance_results_path(pred_dir, name)
        try:
            load_instance_results(path, SplitInfo(annotation_path(data_root, name, split)))
        except FormatError as err:
            problems.append(str(err))
        else:
            files.append(path)
    return files, problems


def write_submission(files: Sequence[Path], out_zip: str | Path) -> None:
    """Zip ``files`` (at the archive root, bytes unchanged) atomically into ``out_zip``."""
    with atomic_output(out_zip, 'wb') as f, zipfile.ZipFile(f, 'w',
                                                            zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, arcname=path.name)
