"""Scoring results files (COCO mAP / mAR per dataset) and rendering result tables."""
from .image_errors import ImageErrors, image_errors
from .report import (average_metrics, render_csv, render_html, render_markdown, render_text,
                     table_rows, write_tables)
from .vision_eval import (STAT_NAMES, coco_map_mar, coco_stats, evaluate_datasets,
                          evaluate_file, evaluation_summary, ground_truth, prediction_path,
                          write_evaluation)

__all__ = [
    'ImageErrors', 'image_errors', 'average_metrics', 'render_csv', 'render_html',
    'render_markdown', 'render_text', 'table_rows', 'write_tables', 'STAT_NAMES',
    'coco_map_mar', 'coco_stats', 'evaluate_datasets', 'evaluate_file', 'evaluation_summary',
    'ground_truth', 'prediction_path', 'write_evaluation'
]
