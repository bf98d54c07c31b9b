"""Surface textures of inspected parts: shipped photographs and procedural materials.

Every function returns a float32 ``(h, w, 3)`` RGB image in [0, 255] and draws only from
the ``numpy.random.Generator`` it is given, so a seed fixes the output.
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage import data as skdata

# Surface photographs bundled inside scikit-image itself (no download needed).
PHOTOS = ('brick', 'gravel', 'grass')


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    if name not in PHOTOS:
        raise ValueError(f'unknown texture photograph {name!r}; choose from {PHOTOS}')
    img = getattr(skdata, name)().astype(np.float32)
    return (img - img.mean()) / (img.std() + 1e-6)


def smooth_noise(h: int, w: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features about ``cell`` pixels wide."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return (out - out.mean()) / (out.std() + 1e-6)


def fractal_noise(h: int, w: int, rng: np.random.Generator, cell: float,
                  octaves: int = 4, persistence: float = 0.5) -> np.ndarray:
    """Sum of :func:`smooth_noise` octaves (halving the cell size each time)."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        out += amp * smooth_noise(h, w, rng, max(cell, 1.0))
        cell /= 2
        amp *= persistence
    return (out - out.mean()) / (out.std() + 1e-6)


def colorize(gray: np.ndarray, dark: tuple[float, float, float],
             light: tuple[float, float, float]) -> np.ndarray:
    """Map a standardised grey map onto a colour ramp from ``dark`` to ``light``."""
    t = np.clip(0.5 + 0.22 * gray, 0.0, 1.0)[..., None]
    dark_, light_ = np.float32(dark), np.float32(light)
    return (dark_ + t * (light_ - dark_)).astype(np.float32)


def jitter_color(rgb: tuple[float, float, float], rng: np.random.Generator,
                 amount: float = 12.0) -> tuple[float, float, float]:
    """Vary brightness by about ``amount`` and hue only slightly (parts of one kind
    differ mostly in exposure)."""
    common = rng.normal(0, amount)
    return tuple(float(np.clip(c + common + rng.normal(0, amount / 4), 0, 255)) for c in rgb)


def photo_texture(name: str, h: int, w: int, rng: np.random.Generator,
                  dark: tuple[float, float, float], light: tuple[float, float, float]
                  ) -> np.ndarray:
    """A tinted, randomly scaled, rotated and mirror-tiled crop of a shipped photograph."""
    tex = np.rot90(_photo(name), int(rng.integers(4)))
    if rng.random() < 0.5:
        tex = tex[:, ::-1]
    scale = float(rng.uniform(0.5, 1.3)) * max(1.0, min(h, w) / 512) ** 0.5
    tex = cv2.resize(np.ascontiguousarray(tex), None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_LINEAR)
    reps = (h // tex.shape[0] + 2, w // tex.shape[1] + 2)
    tiled = np.pad(tex, ((0, (reps[0] - 1) * tex.shape[0]), (0, (reps[1] - 1) * tex.shape[1])),
                   mode='symmetric')
    y0 = int(rng.integers(0, tiled.shape[0] - h + 1))
    x0 = int(rng.integers(0, tiled.shape[1] - w + 1))
    return colorize(tiled[y0:y0 + h, x0:x0 + w], jitter_color(dark, rng),
                    jitter_color(light, rng))


def brushed_metal(h: int, w: int, rng: np.random.Generator,
                  base: tuple[float, float, float] = (150, 152, 156)) -> np.ndarray:
    """Fine streaks along one direction, a soft anisotropic highlight band."""
    vertical = rng.random() < 0.5
    hh, ww = (w, h) if vertical else (h, w)
    streaks = rng.standard_normal((hh, ww)).astype(np.float32)
    length = max(15, int(ww * rng.uniform(0.1, 0.3))) | 1
    streaks = cv2.blur(streaks, (length, 1))
    streaks = (streaks - streaks.mean()) / (streaks.std() + 1e-6)
    waviness = smooth_noise(hh, ww, rng, cell=max(hh, ww) / 3)
    band_pos = rng.uniform(0.2, 0.8) * hh
    band = np.exp(-((np.arange(hh, dtype=np.float32) - band_pos) / (0.25 * hh)) ** 2)
    gray = 0.9 * streaks + 0.5 * waviness + 2.2 * band[:, None]
    if vertical:
        gray = gray.T
    base = jitter_color(base, rng, 10)
    return colorize(gray, tuple(0.55 * c for c in base), tuple(min(255, 1.25 * c) for c in base))


def wood_grain(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Growth rings of a log centred far outside the board, bent by low-frequency noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = rng.uniform(-2.0, 3.0) * h
    cx = float(rng.choice([-1.5, 2.5])) * w
    stretch = rng.uniform(0.05, 0.2)
    turb = fractal_noise(h, w, rng, cell=min(h, w) / 3, octaves=3)
    r = np.sqrt((yy - cy) ** 2 + (stretch * (xx - cx)) ** 2) + 6.0 * turb
    period = rng.uniform(9, 22) * max(1.0, min(h, w) / 400)
    rings = np.sin(2 * np.pi * r / period)
    rings = np.sign(rings) * np.abs(rings) ** 0.4
    fibres = cv2.blur(rng.standard_normal((h, w)).astype(np.float32), (max(9, w // 12) | 1, 1))
    fibres /= fibres.std() + 1e-6
    gray = 1.0 * rings + 0.35 * fibres + 0.6 * turb
    dark = jitter_color((120, 78, 42), rng, 10)
    light = jitter_color((214, 170, 118), rng, 10)
    return colorize(gray, dark, light)


def cast_surface(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Sand-cast metal: granular multi-scale noise, sparse tiny pores, a photo of gravel."""
    grains = fractal_noise(h, w, rng, cell=rng.uniform(3, 6), octaves=2)
    mottling = fractal_noise(h, w, rng, cell=min(h, w) / 4, octaves=3)
    gravel = photo_texture('gravel', h, w, rng, (0, 0, 0), (255, 255, 255))[..., 0]
    gravel = (gravel - gravel.mean()) / (gravel.std() + 1e-6)
    pores = (rng.random((h, w)) < 0.0015).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), 0.8) * -25.0
    gray = 0.8 * grains + 0.6 * mottling + 0.5 * gravel + pores
    base = jitter_color((128, 124, 118), rng, 10)
    return colorize(gray, tuple(0.5 * c for c in base), tuple(min(255, 1.35 * c) for c in base))


def matte_background(h: int, w: int, rng: np.random.Generator,
                     base: tuple[float, float, float] = (40, 42, 45)) -> np.ndarray:
    """The dark fixture or conveyor a part lies on."""
    gray = fractal_noise(h, w, rng, cell=min(h, w) / 5, octaves=4)
    base = jitter_color(base, rng, 6)
    return colorize(gray, tuple(0.6 * c for c in base), tuple(1.4 * c for c in base))


def glass(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Nearly featureless backlit glass or film: smooth shading, faint haze."""
    gray = 0.6 * smooth_noise(h, w, rng, cell=min(h, w) / 1.5) \
        + 0.15 * fractal_noise(h, w, rng, cell=min(h, w) / 8, octaves=3)
    base = jitter_color((170, 182, 190), rng, 10)
    return colorize(gray, tuple(0.8 * c for c in base), tuple(min(255, 1.1 * c) for c in base))


def lighting(img: np.ndarray, rng: np.random.Generator, strength: float = 0.35) -> np.ndarray:
    """Multiply by a linear gradient and a vignette, as an uneven ring light gives."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx / w - 0.5) + np.sin(angle) * (yy / h - 0.5))
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    vignette = ((yy - cy) / h) ** 2 + ((xx - cx) / w) ** 2
    gain = 1.0 + strength * (ramp * rng.uniform(0.5, 1.5) - vignette * rng.uniform(0.5, 1.5))
    return img * gain[..., None]


def sensor_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot-like noise growing with brightness, read noise, and faint column banding."""
    h, w = img.shape[:2]
    sigma = rng.uniform(1.0, 2.5) + 0.012 * np.clip(img, 0, 255)
    noisy = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    noisy += rng.normal(0, 0.8, size=(1, w, 1)).astype(np.float32)
    return noisy


def plastic(h: int, w: int, rng: np.random.Generator,
            base: tuple[float, float, float] = (200, 90, 40)) -> np.ndarray:
    """Moulded or extruded polymer: smooth, slightly mottled, one colour."""
    gray = 0.7 * smooth_noise(h, w, rng, cell=min(h, w) / 3) \
        + 0.3 * fractal_noise(h, w, rng, cell=6, octaves=2)
    base = jitter_color(base, rng, 8)
    return colorize(gray, tuple(0.75 * c for c in base), tuple(min(255, 1.2 * c) for c in base))
