"""Entry-point set-up shared by the tools."""
from .prediction import PredictTarget, SplitPredictor, add_prediction_arguments
from .setup import (VIS_BACKENDS, DictAction, adapt_to_device, add_common_arguments,
                    add_vis_backends, allow_trusted_checkpoints, default_work_dir,
                    leave_process_group, limit_iterations, load_config, prepare_config, set_amp)
from .testing import configure_test, publish_results, use_tta, use_tta_pipeline

__all__ = [
    'VIS_BACKENDS', 'DictAction', 'adapt_to_device', 'add_common_arguments',
    'add_vis_backends', 'allow_trusted_checkpoints',
    'default_work_dir', 'leave_process_group', 'limit_iterations', 'load_config',
    'prepare_config', 'set_amp', 'PredictTarget', 'SplitPredictor', 'add_prediction_arguments',
    'configure_test', 'publish_results', 'use_tta', 'use_tta_pipeline'
]
