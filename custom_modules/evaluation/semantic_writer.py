"""Write the semantic model's predictions as ``<Dataset>.sem.json`` (an MMSegmentation
metric, so ``tools/test.py`` and distributed testing collect the results as usual)."""
from __future__ import annotations

from typing import Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmseg.registry import METRICS

from custom_modules.formats import SEMANTIC_SUFFIX, encode_mask, save_semantic_results


@METRICS.register_module()
class SemanticResultsWriter(BaseMetric):
    """Collect one binary defect mask per image (every non-background label, at the
    image's original size) and save them to ``{outfile_prefix}.sem.json``, keyed by the
    COCO image id each sample carries in its ``img_id`` meta key. Reports no metric."""

    default_prefix = 'semantic'

    def __init__(self, outfile_prefix: str, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.outfile_prefix = outfile_prefix

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'img_id' not in sample:
                raise KeyError(f'{sample.get("img_path")}: no img_id in the sample meta '
                               "(add 'img_id' to PackSegInputs' meta_keys)")
            labels = sample['pred_sem_seg']['data'].squeeze(0).cpu().numpy()
            self.results.append((int(sample['img_id']), encode_mask(labels != 0)))

    def compute_metrics(self, results: list) -> dict:
        path = f'{self.outfile_prefix}{SEMANTIC_SUFFIX}'
        save_semantic_results(dict(results), path)
        print_log(f'semantic masks of {len(results)} images saved to {path}', logger='current')
        return {}
