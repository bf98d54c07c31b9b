"""Write synthetic datasets in the VISION layout.

``<out>/<Dataset>/{train,val,inference}/_annotations.coco.json`` with JPEG images beside
each file (inference lists images only), and ``<out>/<Dataset>/inference_gt/`` holding the
inference split's hidden ground truth (json only; its images are those in ``inference/``).
Every image draws from its own generator seeded by (seed, dataset, split, index), so a seed
fixes every byte and a dataset does not change when others are added or left out.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from custom_modules.formats import atomic_output, dump_json
from custom_modules.vision.registry import ANNOTATION_NAME

from . import textures
from .polygons import mask_to_polygons, polygon_annotation, polygons_to_mask
from .scenes import Scene
from .themes import THEMES, DefectClass, Theme

SPLITS = ('train', 'val', 'inference')
JPEG_QUALITY = 92
MAX_TRIES = 40  # placements tried per defect before giving up on it


@dataclass(frozen=True)
class Preset:
    num_datasets: int | None  # None: every theme
    counts: tuple[int, int, int] | None  # train, val, inference; None: the theme's own
    long_side: tuple[int, int] | None  # range of the longer image side; None: theme's size
    min_defect_px: float  # no defect's characteristic length below this
    max_defects: int  # per image


PRESETS: dict[str, Preset] = {
    # smallest, for fast tests
    'smoke': Preset(2, (6, 3, 4), (128, 256), min_defect_px=12, max_defects=2),
    # a CPU demo trains tiny models on it in minutes; defects large enough to learn
    'demo': Preset(3, (16, 6, 12), (256, 512), min_defect_px=18, max_defects=3),
    # the demo's images with VISION's balance: few labelled, many more unlabelled
    # (self-training measurements)
    'semi': Preset(3, (8, 6, 48), (256, 512), min_defect_px=18, max_defects=3),
    # VISION-like sizes and counts
    'full': Preset(None, None, None, min_defect_px=6, max_defects=5),
}


@dataclass
class Instance:
    category: int  # index into the theme's classes
    polygons: list[list[float]]


def _dataset_key(theme: Theme) -> int:
    return zlib.crc32(theme.name.encode())


def _image_size(theme: Theme, preset: Preset, rng: np.random.Generator) -> tuple[int, int]:
    """The dataset's nominal ``(height, width)``: the theme's, or its aspect ratio
    rescaled into the preset's range of longer sides."""
    h, w = theme.size
    if preset.long_side is None:
        return h, w
    long = int(rng.integers(preset.long_side[0], preset.long_side[1] + 1))
    short = max(round(min(h, w) * long / max(h, w)), preset.long_side[0] // 2)
    return (short, long) if h <= w else (long, short)


def _defect_size(cls: DefectClass, min_side: int, preset: Preset,
                 rng: np.random.Generator) -> float:
    if rng.random() < cls.large_prob:
        frac = rng.uniform(0.6, 0.95)
    else:
        frac = np.exp(rng.uniform(np.log(cls.size[0]), np.log(cls.size[1])))
    return float(np.clip(frac * min_side, preset.min_defect_px, 0.95 * min_side))


def _place_defect(theme: Theme, category: int, scene: Scene, occupied: np.ndarray,
                  preset: Preset, rng: np.random.Generator) -> Instance | None:
    """Paint one defect of ``category`` that keeps clear of earlier ones."""
    cls = theme.classes[category]
    min_side = min(scene.shape)
    for _ in range(MAX_TRIES):
        defect = cls.painter(scene, rng, _defect_size(cls, min_side, preset, rng))
        if defect is None or not defect.shape.any():
            continue
        hh, ww = defect.shape.shape
        local = mask_to_polygons(defect.shape)
        if not local:
            continue
        region = polygons_to_mask(local, hh, ww)
        window = (slice(defect.y0, defect.y0 + hh), slice(defect.x0, defect.x0 + ww))
        if region.sum() < 9 or (region & occupied[window]).any():
            continue
        scene.image[window][region] = defect.paint[region]
        occupied[window] |= cv2.dilate(region.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        shifted = [[v + (defect.x0 if i % 2 == 0 else defect.y0) for i, v in enumerate(poly)]
                   for poly in local]
        return Instance(category, shifted)
    return None


def paint_defects(theme: Theme, scene: Scene, first_category: int, preset: Preset,
                  rng: np.random.Generator) -> list[Instance]:
    """Paint non-overlapping defects into ``scene.image``; the first is of
    ``first_category`` when it fits, and there is always at least one."""
    occupied = np.zeros(scene.shape, bool)
    count = 1 + int(rng.binomial(preset.max_defects - 1, 0.35))
    wanted = [first_category] + [int(rng.integers(len(theme.classes))) for _ in range(count - 1)]
    instances = []
    for category in wanted:
        instance = _place_defect(theme, category, scene, occupied, preset, rng)
        if instance is not None:
            instances.append(instance)
    fallbacks = iter(rng.permutation(len(theme.classes)).tolist())
    while not instances:
        category = next(fallbacks, None)
        if category is None:
            raise RuntimeError(f'{theme.name}: could not place any defect on a '
                               f'{scene.shape[1]}x{scene.shape[0]} image')
        instance = _place_defect(theme, category, scene, occupied, preset, rng)
        instances += [instance] if instance is not None else []
    return instances


def render_image(theme: Theme, height: int, width: int, first_category: int, preset: Preset,
                 rng: np.random.Generator) -> tuple[np.ndarray, list[Instance]]:
    """One inspection image (uint8 RGB) and its defects, lit and with sensor noise."""
    scene = theme.scene(height, width, rng)
    instances = paint_defects(theme, scene, first_category, preset, rng)
    image = textures.sensor_noise(textures.lighting(scene.image, rng), rng)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), instances


def _write_jpeg(image: np.ndarray, path: Path) -> None:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f'{path}: JPEG encoding failed')
    with atomic_output(path, 'wb') as f:
        f.write(buf.tobytes())


def _coco(theme: Theme, images: list[dict], annotations: list[dict], seed: int) -> dict:
    return {
        'info': {'description': f'synthetic {theme.name} (custom_modules.synthetic)',
                 'seed': seed},
        'images': images,
        'categories': [{'id': theme.first_id + k, 'name': cls.name, 'supercategory': 'defect'}
                       for k, cls in enumerate(theme.classes)],
        'annotations': annotations,
    }


def write_dataset(root: str | Path, theme: Theme, preset: Preset, seed: int = 0,
                  progress: bool = True) -> Path:
    """Render and write one dataset; returns its folder."""
    key = _dataset_key(theme)
    out = Path(root) / theme.name
    height, width = _image_size(theme, preset, np.random.default_rng([seed, key]))
    counts = preset.counts or theme.counts
    total = sum(counts)
    bar = tqdm(total=total, desc=theme.name, unit='img', disable=not progress)
    for split_index, (split, count) in enumerate(zip(SPLITS, counts)):
        images, annotations = [], []
        for i in range(count):
            rng = np.random.default_rng([seed, key, split_index, i])
            jitter = 1 - theme.size_jitter * rng.random()
            h, w = max(32, int(height * jitter)), max(32, int(width * jitter))
            image, instances = render_image(theme, h, w, i % len(theme.classes), preset, rng)
            image_id = theme.first_id + i
            file_name = f'{theme.name.lower()}_{split}_{i:04d}.jpg'
            _write_jpeg(image, out / split / file_name)
            images.append({'id': image_id, 'file_name': file_name, 'height': h, 'width': w})
            for inst in instances:
                annotations.append({
                    'id': theme.first_id + len(annotations), 'image_id': image_id,
                    'category_id': theme.first_id + inst.category,
                    **polygon_annotation(inst.polygons, h, w)
                })
            bar.update()
        if split == 'inference':
            dump_json(_coco(theme, images, [], seed), out / split / ANNOTATION_NAME)
            dump_json(_coco(theme, images, annotations, seed),
                      out / 'inference_gt' / ANNOTATION_NAME)
        else:
            dump_json(_coco(theme, images, annotations, seed), out / split / ANNOTATION_NAME)
    bar.close()
    return out


def generate(out_dir: str | Path, seed: int = 0, num_datasets: int | None = None,
             preset: str = 'demo', progress: bool = True) -> list[str]:
    """Write the first ``num_datasets`` themes (the preset's default when ``None``) under
    ``out_dir``; returns the dataset names."""
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose from {sorted(PRESETS)}')
    spec = PRESETS[preset]
    n = num_datasets if num_datasets is not None else (spec.num_datasets or len(THEMES))
    if not 1 <= n <= len(THEMES):
        raise ValueError(f'num_datasets must be in 1..{len(THEMES)}, got {n}')
    for theme in THEMES[:n]:
        write_dataset(out_dir, theme, spec, seed, progress)
    return [theme.name for theme in THEMES[:n]]
