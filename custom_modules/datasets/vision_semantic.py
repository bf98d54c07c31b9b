"""The binary defect masks of a VISION split as an MMSegmentation dataset."""
from __future__ import annotations

import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from custom_modules.formats import FormatError
from custom_modules.vision.annotations import load_coco
from custom_modules.vision.semantic_masks import annotations_by_image, defect_rle


@DATASETS.register_module()
class VisionSemanticDataset(BaseSegDataset):
    """Images listed by a split's COCO json, each with its binary defect mask (0
    background, 1 defect: the union of its instance masks) as an RLE under
    ``defect_rle``, which :class:`LoadDefectMask` decodes. Nothing is read from or
    written to disk besides the json and the images.

    Each sample carries its COCO ``img_id`` (pack it with ``PackSegInputs(meta_keys=(...,
    'img_id'))``) for the results file. A split without annotations (the unlabelled
    inference split) loads without masks in test mode; its test pipeline then must not
    load them.
    """

    METAINFO = dict(classes=('background', 'defect'), palette=[[0, 0, 0], [255, 0, 0]])

    def load_data_list(self) -> list[dict]:
        coco = load_coco(self.ann_file)
        labelled = bool(coco['annotations'])
        if not labelled and not self.test_mode:
            raise FormatError(f'{self.ann_file}: no annotations to train on')
        by_image = annotations_by_image(coco)
        img_dir = self.data_prefix.get('img_path', '')
        data_list = []
        for img in coco['images']:
            info = dict(img_path=osp.join(img_dir, img['file_name']), img_id=int(img['id']),
                        label_map=self.label_map, reduce_zero_label=self.reduce_zero_label,
                        seg_fields=[])
            if labelled:
                info['defect_rle'] = defect_rle(by_image[img['id']], img['height'],
                                                img['width'], self.ann_file)
            data_list.append(info)
        return data_list
