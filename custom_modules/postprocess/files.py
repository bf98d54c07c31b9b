"""Which datasets a post-processing run covers, and all-or-nothing writing of its outputs."""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from custom_modules.formats import FormatError


def datasets_in(pred_dir: str | Path, suffix: str) -> set[str]:
    """Dataset names of the ``<Dataset><suffix>`` files in ``pred_dir``."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FormatError(f'{pred_dir}: prediction directory does not exist')
    return {p.name[:-len(suffix)] for p in pred_dir.glob(f'*{suffix}') if p.is_file()}


def select_datasets(sources: Sequence[tuple[str | Path, str]], requested: Sequence[str] | None,
                    require_all: bool) -> list[str]:
    """Datasets to process from ``(directory, file suffix)`` sources.

    ``requested`` names them explicitly (each file must exist in every source). Otherwise
    ``require_all`` takes every dataset found in any source and requires it in all of them
    (an ensemble must not silently lose a model); without it, datasets missing from some
    source are skipped with a warning (fusion needs both files of a dataset).
    """
    found = [datasets_in(d, suffix) for d, suffix in sources]
    if requested:
        names = list(dict.fromkeys(requested))
    else:
        union = set().union(*found)
        common = set.intersection(*found)
        if not require_all and union - common:
            warnings.warn(f'skipping datasets not present in every input: '
                          f'{", ".join(sorted(union - common))}')
        names = sorted(union if require_all else common)
    for name in names:
        for (pred_dir, suffix), present in zip(sources, found):
            if name not in present:
                raise FormatError(f'{Path(pred_dir) / (name + suffix)}: file not found '
                                  f'(dataset {name})')
    if not names:
        raise FormatError(f'{Path(sources[0][0])}: no dataset files in common with the other '
                          'inputs')
    return names


@contextmanager
def staged_outputs(out_dir: str | Path) -> Iterator[Path]:
    """A staging folder inside ``out_dir`` whose files are moved into ``out_dir`` only when
    the block succeeds, so a failure on a later dataset leaves no partial run behind (and
    no empty ``out_dir`` that it made)."""
    out_dir = Path(out_dir)
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix='.staging-', dir=out_dir))
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            os.replace(path, out_dir / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not any(out_dir.iterdir()):
            out_dir.rmdir()
