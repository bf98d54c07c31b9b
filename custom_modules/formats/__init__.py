"""File formats shared by every stage: JSON I/O, results files, the error type."""
from .errors import FormatError
from .json_io import atomic_directory, atomic_output, dump_json, gc_paused, load_json
from .results import (BBOX_SUFFIX, INSTANCE_SUFFIX, SEMANTIC_SUFFIX, SplitInfo, check_rle,
                      encode_mask, instance_results_path, load_instance_results,
                      load_semantic_results, mask_bbox, save_instance_results,
                      save_semantic_results, semantic_results_path)

__all__ = [
    'FormatError', 'atomic_directory', 'atomic_output', 'dump_json', 'gc_paused', 'load_json',
    'BBOX_SUFFIX', 'INSTANCE_SUFFIX', 'SEMANTIC_SUFFIX', 'SplitInfo', 'check_rle', 'encode_mask',
    'instance_results_path', 'load_instance_results', 'load_semantic_results', 'mask_bbox',
    'save_instance_results', 'save_semantic_results', 'semantic_results_path'
]
