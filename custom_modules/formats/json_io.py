"""JSON reading with file-naming errors, atomic writing (temporary file + rename), and
building large JSON trees without garbage-collector pauses."""
from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from .errors import FormatError


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block (also usable as a decorator).

    Results files hold tens of thousands of detections, and every few hundred new dicts
    trigger a collection that walks the objects already alive: reading a dataset's files
    grows quadratic (3.6 instead of 1.7 ms per image at 160 images of 300 detections).
    The trees built from JSON hold no reference cycles, so pausing frees nothing late.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@gc_paused()
def load_json(path: str | Path) -> Any:
    """Parse ``path``; a missing or malformed file raises :class:`FormatError`."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f'{path}: file not found')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(f'{path}: malformed JSON ({err})') from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | Path, mode: str = 'w') -> Iterator[IO]:
    """Open a temporary file beside ``path`` and rename it onto ``path`` only when the
    block finishes without error, so a crash never leaves a half-written output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make outputs private
    try:
        with os.fdopen(fd, mode, **({} if 'b' in mode else {'encoding': 'utf-8'})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def dump_json(obj: Any, path: str | Path, **kwargs: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically. (``json.dumps`` then one write:
    ``json.dump`` streams through the pure-Python encoder, several times slower.)"""
    text = json.dumps(obj, **kwargs)
    with atomic_output(path) as f:
        f.write(text)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` and move it onto ``path`` (replacing
    what was there) only when the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would make the output private
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f'.{path.name}.', suffix='.old', dir=path.parent))
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old)
