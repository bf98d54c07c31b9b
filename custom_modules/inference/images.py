"""The images of an inference run: files, folders and glob patterns, as a user names them."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from custom_modules.formats import FormatError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')


@dataclass(frozen=True)
class ImageFile:
    """An image to predict: its path, and its name in the run's outputs (relative to the
    folder that holds every image of the run, so names are unique)."""
    path: Path
    name: str


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _expand(item: str) -> list[Path]:
    """A file as it is (any suffix: the user named it), a folder's image files (not its
    subfolders), or the image files a glob pattern matches (``**`` recurses)."""
    path = Path(item)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if is_image_file(p))
        if not found:
            raise FormatError(f'{path}: no image files ({", ".join(IMAGE_SUFFIXES)}) in this '
                              'folder')
        return found
    if glob.has_magic(item):
        found = sorted(p for p in map(Path, glob.glob(item, recursive=True)) if is_image_file(p))
        if not found:
            raise FormatError(f'{item}: no image file matches this pattern')
        return found
    raise FormatError(f'{path}: no such file or folder')


def find_images(inputs: Sequence[str | Path]) -> list[ImageFile]:
    """The images named by ``inputs``, in the order given (each folder and pattern
    sorted), each once. An input that names no image raises :class:`FormatError`."""
    if not inputs:
        raise FormatError('no images given')
    paths: dict[Path, Path] = {}
    for item in inputs:
        for path in _expand(str(item)):
            paths.setdefault(path.resolve(), path)
    base = Path(os.path.commonpath([p.parent for p in paths]))
    return [ImageFile(path, resolved.relative_to(base).as_posix())
            for resolved, path in paths.items()]
