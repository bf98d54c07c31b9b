"""Build the model a config describes outside the runner (tools that inspect or time
models): in the config's own registry scope, with the class count of a dataset."""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from custom_modules.vision.selection import is_semantic, set_num_classes


def load_model_config(config: str | Path | Config, num_classes: int = 2) -> Config:
    """The config (a path, or a config to copy) with a detector's heads at
    ``num_classes`` (the semantic model keeps its two classes)."""
    cfg = (Config.fromfile(str(config)) if not isinstance(config, Config)
           else Config(config.to_dict()))
    if not is_semantic(cfg):
        set_num_classes(cfg.model, num_classes)
    return cfg


def build_model(cfg: Config) -> nn.Module:
    """``cfg.model`` built by the registry of the config's ``default_scope``."""
    scope = cfg.default_scope
    with DefaultScope.overwrite_default_scope(scope):
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        return registry.build(cfg.model)
