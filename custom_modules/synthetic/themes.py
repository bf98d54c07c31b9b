"""The synthetic datasets: each a part or surface with its own defect classes.

Names start with ``Syn`` so they are never mistaken for the 14 VISION datasets. Sizes and
counts are the ``full`` preset's; smaller presets rescale them. Defect sizes are fractions
of the image's shorter side.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import defects, scenes, textures

SceneBuilder = Callable[[int, int, np.random.Generator], scenes.Scene]


@dataclass(frozen=True)
class DefectClass:
    name: str
    painter: defects.Painter
    size: tuple[float, float]  # range of the characteristic length / shorter image side
    large_prob: float = 0.0  # chance of a defect covering most of the image


@dataclass(frozen=True)
class Theme:
    name: str
    scene: SceneBuilder
    classes: tuple[DefectClass, ...]
    first_id: int  # first category (and image) id: VISION has datasets with 0 and with 1
    size: tuple[int, int]  # (height, width) in the full preset
    counts: tuple[int, int, int]  # train, val, inference images in the full preset
    size_jitter: float = 0.0  # per-image relative size spread (0: all images one size)


_brick = partial(textures.photo_texture, 'brick', dark=(95, 45, 30), light=(215, 140, 105))
_gravel = partial(textures.photo_texture, 'gravel', dark=(70, 70, 72), light=(200, 198, 192))
_felt = partial(textures.photo_texture, 'grass', dark=(60, 66, 80), light=(170, 176, 190))
_rust = (150, 75, 35)
_oil = (55, 50, 38)
_residue = (232, 232, 224)

THEMES: tuple[Theme, ...] = (
    Theme('SynCasting', scenes.surface(textures.cast_surface), (
        DefectClass('inclusion', defects.spot((38, 33, 30)), (0.05, 0.12)),
        DefectClass('shrinkage_pit', defects.pit(), (0.08, 0.2)),
    ), first_id=1, size=(1024, 1280), counts=(40, 12, 150), size_jitter=0.3),
    Theme('SynScrew', scenes.part_on_fixture('socket', textures.brushed_metal), (
        DefectClass('chip', defects.chip, (0.08, 0.2)),
    ), first_id=0, size=(1024, 1024), counts=(40, 10, 200)),
    Theme('SynWood', scenes.surface(textures.wood_grain), (
        DefectClass('crack', defects.crack, (0.25, 0.6)),
        DefectClass('resin_stain', defects.stain((70, 38, 18)), (0.12, 0.35), large_prob=0.05),
    ), first_id=1, size=(1200, 1600), counts=(30, 10, 120)),
    Theme('SynPCB', scenes.pcb, (
        DefectClass('missing_pad', defects.missing_pad, (0.05, 0.1)),
        DefectClass('open_trace', defects.open_trace, (0.06, 0.12)),
        DefectClass('spur', defects.spur, (0.06, 0.14)),
        DefectClass('spurious_copper', defects.extra_copper, (0.04, 0.1)),
    ), first_id=0, size=(1312, 2400), counts=(36, 10, 200)),
    Theme('SynMetalPlate', scenes.part_on_fixture('plate', textures.brushed_metal), (
        DefectClass('scratch', defects.scratch(bright=True), (0.2, 0.5)),
        DefectClass('dent', defects.pit(), (0.06, 0.15)),
        DefectClass('oil_stain', defects.stain(_oil), (0.1, 0.3), large_prob=0.05),
        DefectClass('chipped_edge', defects.chip, (0.06, 0.15)),
        DefectClass('burr', defects.burr, (0.05, 0.12)),
    ), first_id=1, size=(1536, 2048), counts=(50, 15, 250)),
    Theme('SynTile', scenes.surface(_brick), (
        DefectClass('crack', defects.crack, (0.3, 0.7)),
        DefectClass('glaze_spot', defects.spot(_residue), (0.04, 0.1)),
    ), first_id=0, size=(800, 800), counts=(30, 8, 150)),
    Theme('SynConcrete', scenes.surface(_gravel), (
        DefectClass('hole', defects.pit(through=True), (0.06, 0.15)),
        DefectClass('crack', defects.crack, (0.3, 0.7)),
        DefectClass('efflorescence', defects.stain(_residue, matte=True), (0.2, 0.5),
                    large_prob=0.1),
    ), first_id=1, size=(2000, 2624), counts=(30, 10, 120)),
    Theme('SynFelt', scenes.surface(_felt), (
        DefectClass('hole', defects.pit(through=True), (0.05, 0.12)),
        DefectClass('rust_stain', defects.stain(_rust), (0.1, 0.3)),
        DefectClass('thread', defects.scratch(color=(235, 225, 190)), (0.3, 0.6)),
    ), first_id=0, size=(512, 512), counts=(40, 12, 300)),
    Theme('SynCable', scenes.part_on_fixture('bar', partial(textures.plastic,
                                                            base=(205, 95, 40))), (
        DefectClass('break', defects.chip, (0.1, 0.25)),
        DefectClass('burn', defects.stain((30, 24, 20), strength=0.85), (0.08, 0.2)),
    ), first_id=1, size=(600, 1800), counts=(40, 12, 200)),
    Theme('SynRing', scenes.part_on_fixture('ring', textures.brushed_metal), (
        DefectClass('contamination', defects.stain(_oil), (0.06, 0.15)),
        DefectClass('scratch', defects.scratch(bright=True), (0.15, 0.35)),
        DefectClass('unfinished_surface', defects.stain((120, 115, 105), matte=True),
                    (0.3, 0.6), large_prob=0.15),
    ), first_id=0, size=(1280, 1280), counts=(30, 10, 150)),
    Theme('SynLens', scenes.surface(textures.glass), (
        DefectClass('fiber', defects.scratch(bright=False), (0.15, 0.4)),
        DefectClass('particle', defects.spot((30, 30, 34)), (0.02, 0.06)),
        DefectClass('hole', defects.pit(through=True), (0.04, 0.1)),
        DefectClass('surface_damage', defects.stain((215, 222, 228), matte=True), (0.15, 0.4),
                    large_prob=0.05),
        DefectClass('tear', defects.crack, (0.2, 0.5)),
    ), first_id=1, size=(1024, 1024), counts=(40, 12, 200)),
    Theme('SynCapacitor', scenes.part_on_fixture('disc', partial(textures.plastic,
                                                                base=(165, 170, 178))), (
        DefectClass('0', defects.pit(), (0.08, 0.2)),
    ), first_id=0, size=(192, 192), counts=(60, 15, 400)),
    Theme('SynGroove', scenes.part_on_fixture('plate', textures.brushed_metal), (
        DefectClass('groove_burr', defects.burr, (0.05, 0.12)),
        DefectClass('groove_scratch', defects.scratch(bright=False), (0.2, 0.5)),
    ), first_id=1, size=(1024, 2048), counts=(30, 10, 150)),
    Theme('SynHemisphere', scenes.part_on_fixture('disc', textures.cast_surface), (
        DefectClass('dent', defects.pit(), (0.05, 0.12)),
        DefectClass('scratch', defects.scratch(bright=True), (0.15, 0.35)),
        DefectClass('stain', defects.stain(_rust), (0.08, 0.2)),
        DefectClass('chip', defects.chip, (0.06, 0.15)),
    ), first_id=0, size=(1600, 1600), counts=(40, 12, 200)),
)
