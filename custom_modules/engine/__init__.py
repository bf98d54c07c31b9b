"""Entry-point set-up shared by the tools."""
from .setup import (DictAction, adapt_to_device, add_common_arguments, allow_trusted_checkpoints,
                    default_work_dir, leave_process_group, limit_iterations, load_config,
                    prepare_config)
from .prediction import PredictTarget, SplitPredictor, add_prediction_arguments
from .testing import configure_test, publish_results, use_tta, use_tta_pipeline

__all__ = [
    'DictAction', 'adapt_to_device', 'add_common_arguments', 'allow_trusted_checkpoints',
    'default_work_dir', 'leave_process_group', 'limit_iterations', 'load_config',
    'prepare_config', 'PredictTarget', 'SplitPredictor', 'add_prediction_arguments',
    'configure_test', 'publish_results', 'use_tta', 'use_tta_pipeline'
]
