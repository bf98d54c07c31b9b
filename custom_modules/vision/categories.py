"""Which categories of an annotation file are the model's classes, and how a class finds
its category id in any split's file.

Roboflow's COCO exports carry the project itself as a category: id 0, supercategory
``"none"``, named as the supercategory of every real class, and used by no annotation. It
is not a defect class, so it is left out of the model's classes. The classes are matched
to each file's categories by name: exports do not keep one category order across splits,
and MMDetection matches by file order (``COCO.getCatIds`` keeps the file's order).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from custom_modules.formats.errors import FormatError

PROJECT_CATEGORY_ID = 0
PROJECT_SUPERCATEGORY = 'none'


def is_project_category(category: dict, categories: Sequence[dict]) -> bool:
    """Whether ``category`` is Roboflow's project category among ``categories`` (its id and
    supercategory, and it is the supercategory of all the others)."""
    others = [c for c in categories if c is not category]
    return (category['id'] == PROJECT_CATEGORY_ID
            and category.get('supercategory') == PROJECT_SUPERCATEGORY and bool(others)
            and all(c.get('supercategory') == category['name'] for c in others))


def class_categories(categories: Sequence[dict],
                     annotated_ids: Iterable[int]) -> tuple[list[dict], dict | None]:
    """The categories that are classes (sorted by id) and the project category left out
    (``None`` when there is none). ``annotated_ids``: the category ids the annotations of
    the labelled splits use; a project category in use stays a class."""
    used = set(annotated_ids)
    project = next((c for c in categories
                    if c['id'] not in used and is_project_category(c, categories)), None)
    classes = sorted((c for c in categories if c is not project), key=lambda c: c['id'])
    return classes, project


def project_category_note(project: dict) -> str:
    """What to tell the user about a project category left out of the classes."""
    return (f'category {project["id"]} {project["name"]!r} is Roboflow\'s project category '
            f'(supercategory "{PROJECT_SUPERCATEGORY}", no annotations): not a class')


def category_ids_by_name(categories: Sequence[dict], classes: Sequence[str],
                         ann_file: str | Path) -> list[int]:
    """The category id of each class in ``categories`` (one file's), in class order."""
    ids = {c['name']: c['id'] for c in categories}
    missing = [name for name in classes if name not in ids]
    if missing:
        raise FormatError(f'{ann_file}: no category named {", ".join(map(repr, missing))} '
                          f'(categories: {sorted(ids)})')
    return [ids[name] for name in classes]
