"""Predict several splits with one model in one process: the splits a trained model
must predict (``tools/test.py --predict``), right after training it
(``tools/train.py --predict``), with the model loaded or trained once.

Each split goes through MMEngine's test loop with its own dataloader and evaluator, as
``Runner.test()`` runs one test set, and its results files are checked and published
as :func:`~custom_modules.engine.testing.publish_results` does. Test-time
augmentation wraps the runner's model in the config's ``tta_model`` at prediction
time, so a model trained in the process and one loaded from its checkpoint take the
same path.
"""
from __future__ import annotations

import argparse
import copy
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mmengine.config import Config, ConfigDict
from mmengine.dist import is_main_process
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS
from mmengine.runner import Runner

from custom_modules.formats import FormatError
from custom_modules.vision.registry import annotation_path
from custom_modules.vision.selection import select_dataset

from .testing import configure_test, publish_results, use_tta_pipeline

__all__ = ['PredictTarget', 'SplitPredictor', 'add_prediction_arguments']


@dataclass(frozen=True)
class PredictTarget:
    """One split to predict and the folder its results files go to."""
    split: str
    out_dir: Path

    @classmethod
    def parse(cls, text: str) -> PredictTarget:
        """``SPLIT=OUT_DIR``, as given on the command line."""
        split, sep, out_dir = text.partition('=')
        if not sep or not split or not out_dir:
            raise argparse.ArgumentTypeError(f'{text!r}: expected SPLIT=OUT_DIR')
        return cls(split, Path(out_dir))


def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    """``--predict SPLIT=OUT_DIR ...`` and ``--tta``."""
    parser.add_argument('--predict', nargs='+', action='extend', type=PredictTarget.parse,
                        default=[],
                        metavar='SPLIT=OUT_DIR',
                        help='predict each SPLIT into OUT_DIR/<Dataset>.*.json')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation (the config's tta_model, tta_pipeline)")


def _forget_test_scalars(runner: Runner) -> None:
    """Start a test run as the first one: without the ``test/`` scalars (metrics, times)
    of a split predicted before, which MMEngine's log of this split's end would repeat."""
    scalars = runner.message_hub.log_scalars
    for key in [key for key in scalars if key.startswith('test/')]:
        del scalars[key]


@dataclass
class _SplitTest:
    """The test set of one split: what the test loop reads and where its files go."""
    target: PredictTarget
    dataloader: ConfigDict
    evaluator: ConfigDict | list
    staged: list[Path]
    ann_file: Path


class SplitPredictor:
    """Predictions of ``targets`` on ``dataset`` of ``data_root`` for ``cfg``'s model.

    Built before the runner, so that a missing split or a config without TTA is an
    error before any training or loading; :meth:`run` then predicts with a runner's
    model. ``train_split`` is the split the model's class names come from (default:
    :func:`~custom_modules.vision.selection.select_dataset`'s).
    """

    def __init__(self, cfg: Config, data_root: str | Path, dataset: str,
                 targets: list[PredictTarget], tta: bool = False,
                 train_split: str | None = None) -> None:
        out_dirs = [t.out_dir.resolve() for t in targets]
        if len(set(out_dirs)) < len(out_dirs):
            raise FormatError('--predict: each split needs its own output folder (their '
                              f'results files share names): {", ".join(map(str, out_dirs))}')
        self.tta = tta
        self.tests = [self._split_test(cfg, data_root, dataset, t, train_split) for t in targets]

    def _split_test(self, cfg: Config, data_root: str | Path, dataset: str,
                    target: PredictTarget, train_split: str | None) -> _SplitTest:
        split_cfg = copy.deepcopy(cfg)
        select_dataset(split_cfg, data_root, dataset, train_split=train_split,
                       test_split=target.split)
        if self.tta:
            use_tta_pipeline(split_cfg)
        staging = target.out_dir / f'.{dataset}.partial' / dataset
        staged = configure_test(split_cfg, data_root, dataset, target.split, staging)
        return _SplitTest(target, split_cfg.test_dataloader, split_cfg.test_evaluator, staged,
                          annotation_path(data_root, dataset, target.split))

    def run(self, runner: Runner) -> dict[str, dict]:
        """Predict every split with ``runner``'s model (trained in this process, or
        loaded from the config's ``load_from``), publish its results files and print
        them and its metrics; return the metrics by split.

        Each split is one ``runner.test()`` with that split's test loop: the runner's
        hooks read the loop as ``runner.test_loop``, which MMEngine keeps (and lets
        ``test()`` run) in ``runner._test_loop``. The checkpoint, if any, is loaded by the
        first.
        """
        metrics = {}
        with self._model_for_prediction(runner):
            for test in self.tests:
                _forget_test_scalars(runner)
                runner._test_loop = LOOPS.build(runner.cfg.test_cfg, default_args=dict(
                    runner=runner, dataloader=test.dataloader, evaluator=test.evaluator))
                metrics[test.target.split] = runner.test()
                if is_main_process():
                    self._publish(test, metrics[test.target.split])
        return metrics

    @contextmanager
    def _model_for_prediction(self, runner: Runner) -> Iterator[None]:
        """With TTA, ``runner.model`` is the config's ``tta_model`` around the runner's
        model while the splits are predicted (a test step needs no distributed wrapper;
        MMEngine loads a checkpoint into the wrapped model, as for MMDetection's
        ``tools/test.py --tta``)."""
        if not self.tta:
            yield
            return
        model = runner.model
        module = model.module if is_model_wrapper(model) else model
        runner.model = runner.build_model(dict(**runner.cfg.tta_model, module=module))
        try:
            yield
        finally:
            runner.model = model

    @staticmethod
    def _publish(test: _SplitTest, metrics: dict) -> None:
        for path in publish_results(test.staged, test.target.out_dir, test.ann_file):
            print(f'wrote {path}')
        for name, value in metrics.items():
            print(f'{name}: {value}')
