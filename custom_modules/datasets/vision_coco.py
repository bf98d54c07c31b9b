"""A VISION split as MMDetection COCO data, its classes matched to category ids by name."""
from __future__ import annotations

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS

from custom_modules.vision.categories import category_ids_by_name


class NameMatchedCOCO(COCO):
    """MMDetection's COCO API whose ``get_cat_ids(cat_names=classes)`` lists the ids in the
    order of ``classes``, matched by name (the base lists them in the file's order, so a
    class's label would depend on how each export orders its categories)."""

    def __init__(self, annotation_file: str | None = None) -> None:
        self.annotation_file = annotation_file
        super().__init__(annotation_file)

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):  # noqa: B006 (base's)
        if cat_names and not sup_names and not cat_ids:
            return category_ids_by_name(self.dataset['categories'], cat_names,
                                        self.annotation_file)
        return super().get_cat_ids(cat_names, sup_names, cat_ids)


@DATASETS.register_module()
class VisionCocoDataset(CocoDataset):
    """``CocoDataset`` with label ``i`` for the category named ``classes[i]`` in its file,
    whatever the order of the file's ``categories``. Categories not among the classes
    (Roboflow's project category) get no label; they have no annotations."""

    COCOAPI = NameMatchedCOCO
