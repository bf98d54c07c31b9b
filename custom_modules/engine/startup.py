"""Two start-up costs of MMEngine's ``Runner`` that its output does not need, removed
by :func:`patch_runner_startup` (the tools call it before building a runner).

* Formatting the config: each read of ``Config.pretty_text`` formats the whole config
  with yapf (to log it, to dump it into the work dir, for the visualizer's copy, for
  the runtime info of every run, in the meta of every checkpoint): four times, a
  second each on a CPU, before a test run's first image. yapf's output depends only
  on its input and style, so the ``FormatCode`` that ``mmengine.config.config`` calls
  is memoised: the texts stay byte for byte MMEngine's, each formatted once.
* Logging the environment: ``collect_env`` imports torchvision to log its version,
  which loads ``torch._dynamo`` and triton (seconds) in runs that never use them. The
  runner's ``collect_env`` finds ``import torchvision`` answered by a stand-in module
  holding only the version, read from torchvision's ``version.py``; the log holds the
  same line, and a later real import of torchvision is unaffected.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import mmengine.config.config as mmengine_config
import mmengine.runner.runner as mmengine_runner
from mmengine.utils.dl_utils import collect_env
from yapf.yapflib.yapf_api import FormatCode

__all__ = ['patch_runner_startup']


@functools.lru_cache(maxsize=4)
def _format_code(source: str, style_json: str) -> tuple[str, bool]:
    return FormatCode(source, style_config=json.loads(style_json))


def _memoised_format_code(source: str, style_config: dict) -> tuple[str, bool]:
    """yapf's ``FormatCode(source, style_config=...)``, called as ``Config.pretty_text``
    calls it, answered from a cache for a text seen before."""
    return _format_code(source, json.dumps(style_config, sort_keys=True))


def _torchvision_version() -> str | None:
    """torchvision's ``__version__`` as its ``version.py`` states it, without importing
    the package; ``None`` when not installed or not stated there."""
    spec = importlib.util.find_spec('torchvision')
    if spec is None or spec.origin is None:
        return None
    version_file = Path(spec.origin).with_name('version.py')
    if not version_file.is_file():
        return None
    match = re.search(r"^__version__ = '([^']+)'$", version_file.read_text(), re.M)
    return match[1] if match else None


def _collect_env_without_torchvision() -> OrderedDict:
    """MMEngine's ``collect_env``, with ``import torchvision`` answered by a module
    holding only ``__version__`` (unless torchvision is loaded already, or its version
    cannot be read without importing it)."""
    version = None if 'torchvision' in sys.modules else _torchvision_version()
    if version is None:
        return collect_env()
    stand_in = types.ModuleType('torchvision')
    stand_in.__version__ = version
    sys.modules['torchvision'] = stand_in
    try:
        return collect_env()
    finally:
        if sys.modules.get('torchvision') is stand_in:
            del sys.modules['torchvision']


def patch_runner_startup() -> None:
    """Apply both changes of the module docstring to the names MMEngine's config and
    runner modules call (idempotent)."""
    mmengine_config.FormatCode = _memoised_format_code
    mmengine_runner.collect_env = _collect_env_without_torchvision
