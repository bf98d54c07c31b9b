"""MMDetection's COCO metric with classes matched to the annotation file's category ids
by name (registered with MMDetection's ``METRICS``)."""
from __future__ import annotations

from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS

from custom_modules.vision.categories import category_ids_by_name


@METRICS.register_module()
class VisionCocoMetric(CocoMetric):
    """``CocoMetric`` whose label ``i`` is written and scored as the category named
    ``classes[i]`` in ``ann_file``: the base takes the file's category order, which need
    not be the order the model's labels were trained in."""

    def __init__(self, ann_file: str, **kwargs) -> None:
        super().__init__(ann_file=ann_file, **kwargs)
        self.ann_file = ann_file

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.cat_ids is None:
            self.cat_ids = category_ids_by_name(self._coco_api.dataset['categories'],
                                                self.dataset_meta['classes'], self.ann_file)
        return super().compute_metrics(results)
