"""The TTA merges by name, for tools that compare them on one config."""
from __future__ import annotations

from mmengine.config import ConfigDict

from .base import MaskTTAModel
from .detection_merge import DetectionMergeTTAModel
from .proposal_merge import ProposalMergeTTAModel

# name -> (model class, the tta_cfg settings that make the merge what its name says)
TTA_MERGES: dict[str, tuple[type[MaskTTAModel], dict]] = {
    'detection': (DetectionMergeTTAModel, dict(group_score='all_views')),
    'detection-found': (DetectionMergeTTAModel, dict(group_score='found_views')),
    'proposal': (ProposalMergeTTAModel, {}),
}


def tta_model_for(merge: str, tta_model: dict) -> ConfigDict:
    """The config's ``tta_model`` switched to the merge named ``merge``: the settings of
    the config's ``tta_cfg`` that the merge's class takes, the class's defaults for the
    others, then the merge's own settings."""
    cls, settings = TTA_MERGES[merge]
    tta_cfg = {k: v for k, v in tta_model.get('tta_cfg', {}).items() if k in cls.defaults}
    return ConfigDict(type=cls.__name__, tta_cfg={**tta_cfg, **settings})
