"""The binary defect masks of a VISION split as an MMSegmentation dataset."""
from __future__ import annotations

import os.path as osp
from pathlib import Path

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from custom_modules.formats import FormatError, load_json


@DATASETS.register_module()
class VisionSemanticDataset(BaseSegDataset):
    """Images listed by a split's COCO json, masks ``<seg_map_path>/<image stem>.png``.

    The json (``ann_file``) gives the image list, so images keep their own file names and
    suffixes, and each sample carries its COCO ``img_id`` (pack it with
    ``PackSegInputs(meta_keys=(..., 'img_id'))``) for the results file. The masks are
    the converter's (``tools/dataset_converters/vision.py semantic``): 0 background,
    1 defect. In test mode a split without a mask folder (the unlabelled inference
    split) loads without masks; its test pipeline then must not load annotations.
    """

    METAINFO = dict(classes=('background', 'defect'), palette=[[0, 0, 0], [255, 0, 0]])

    def load_data_list(self) -> list[dict]:
        coco = load_json(self.ann_file)
        if not isinstance(coco, dict) or not isinstance(coco.get('images'), list):
            raise FormatError(f'{self.ann_file}: no "images" list')
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = self.data_prefix.get('seg_map_path')
        if seg_dir is not None and not osp.isdir(seg_dir):
            if not self.test_mode:
                raise FormatError(f'{seg_dir}: no semantic masks (make them with '
                                  'tools/dataset_converters/vision.py semantic)')
            seg_dir = None
        data_list = []
        for img in coco['images']:
            info = dict(img_path=osp.join(img_dir, img['file_name']), img_id=int(img['id']),
                        label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[])
            if seg_dir is not None:
                info['seg_map_path'] = osp.join(seg_dir, f'{Path(img["file_name"]).stem}.png')
                if not osp.isfile(info['seg_map_path']):
                    raise FormatError(f'{info["seg_map_path"]}: missing mask of '
                                      f'{img["file_name"]} (listed in {self.ann_file})')
            data_list.append(info)
        return data_list
