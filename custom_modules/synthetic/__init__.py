"""Synthetic industrial-inspection datasets in the VISION layout (the default data when
no real data is at hand)."""
from .generator import (PRESETS, SPLITS, Instance, Preset, generate, paint_defects, render_image,
                        write_dataset)
from .themes import THEMES, DefectClass, Theme

__all__ = [
    'PRESETS', 'SPLITS', 'THEMES', 'DefectClass', 'Instance', 'Preset', 'Theme', 'generate',
    'paint_defects', 'render_image', 'write_dataset'
]
