"""Defect painters: each proposes one defect on a :class:`Scene`.

A painter returns a :class:`Defect`: a window of the image, the defect's shape inside it
and the window's new pixels. The generator turns the shape into polygons and copies the
new pixels only where the polygons' mask is, so the annotation is exactly the painted
region. ``size`` is the defect's characteristic length in pixels. A painter returns
``None`` when the scene offers no place for it (e.g. no pad left to remove).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from .scenes import Scene
from .textures import smooth_noise

SUBPIXEL = 4  # fixed-point bits for cv2 drawing with sub-pixel precision


@dataclass
class Defect:
    y0: int
    x0: int
    shape: np.ndarray  # bool (h, w): the defect's region inside the window
    paint: np.ndarray  # float32 (h, w, 3): the window's pixels with the defect


Painter = Callable[[Scene, np.random.Generator, float], 'Defect | None']


def _window(scene: Scene, cx: float, cy: float, half: float) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of a square around ``(cx, cy)`` clipped to the image."""
    h, w = scene.shape
    return (max(0, int(cy - half)), min(h, int(cy + half) + 1),
            max(0, int(cx - half)), min(w, int(cx + half) + 1))


def _fixed(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * (1 << SUBPIXEL)).astype(np.int32)


def _blob(h: int, w: int, cx: float, cy: float, radius: float, rng: np.random.Generator,
          roughness: float = 0.25, aspect: float = 1.0) -> np.ndarray:
    """Irregular closed shape: a radius modulated by a few random harmonics."""
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 7):
        r += roughness / k * rng.normal() * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.35, None)
    rot = rng.uniform(0, np.pi)
    x, y = r * np.cos(theta), aspect * r * np.sin(theta)
    pts = np.stack([cx + x * np.cos(rot) - y * np.sin(rot),
                    cy + x * np.sin(rot) + y * np.cos(rot)], 1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_fixed(pts)], 1, cv2.LINE_8, SUBPIXEL)
    return mask > 0


def _bezier(p: np.ndarray, n: int) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return ((1 - t) ** 3 * p[0] + 3 * (1 - t) ** 2 * t * p[1] + 3 * (1 - t) * t ** 2 * p[2]
            + t ** 3 * p[3])


def scratch(bright: bool = True, color: tuple[float, float, float] | None = None) -> Painter:
    """A thin curved line (a bezier curve a few pixels wide): bright like a polished
    groove, or dark like a fibre or an abrasion line."""

    def paint(scene: Scene, rng: np.random.Generator, size: float) -> Defect:
        width = float(np.clip(size * rng.uniform(0.025, 0.04), 2.0, 10.0))
        cx, cy = scene.surface_point(rng, size / 2)
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        ctrl = np.stack([np.array([cx, cy]) + direction * size * t + normal * size * b
                         for t, b in zip((-0.5, -0.17, 0.17, 0.5),
                                         (0, rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3),
                                          0))])
        y0, y1, x0, x1 = _window(scene, cx, cy, 0.85 * size + width)
        curve = _bezier(ctrl, 64) - [x0, y0]
        profile = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.polylines(profile, [_fixed(curve)], False, 1.0, int(round(width)), cv2.LINE_AA,
                      SUBPIXEL)
        bg = scene.image[y0:y1, x0:x1]
        if color is not None:
            target = np.float32(color) * (0.75 + 0.25 * bg / 128.0)
        elif bright:
            target = np.clip(bg * 0.35 + 175, 0, 255)
        else:
            target = bg * 0.3
        a = np.clip(profile, 0, 1)[..., None] * 0.9
        shape = scene.on_surface(profile > 0.3, y0, x0)
        return Defect(y0, x0, shape, bg * (1 - a) + target * a)

    return paint


def crack(scene: Scene, rng: np.random.Generator, size: float) -> Defect:
    """A jagged dark fracture that wanders and branches."""
    step = max(2.0, size / 25)
    width = int(np.clip(round(size * rng.uniform(0.02, 0.03)), 2, 8))
    cx, cy = scene.surface_point(rng, size / 2)
    y0, y1, x0, x1 = _window(scene, cx, cy, size * 0.75 + width)
    shape = np.zeros((y1 - y0, x1 - x0), np.uint8)
    start, heading = np.array([cx - x0, cy - y0]), rng.uniform(0, 2 * np.pi)
    walkers = [(start, heading, size / 2, width), (start, heading + np.pi, size / 2, width)]
    while walkers:
        pos, heading, length, wd = walkers.pop()
        pts = [pos]
        for _ in range(int(length / step)):
            heading += rng.normal(0, 0.35)
            pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
            if rng.random() < 0.06 and length > 4 * step:
                walkers.append((pts[-1], heading + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0),
                                length * 0.45, max(2, wd - 1)))
        cv2.polylines(shape, [_fixed(np.array(pts))], False, 1, wd, cv2.LINE_8, SUBPIXEL)
    bg = scene.image[y0:y1, x0:x1]
    core = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), 0.7)[..., None]
    return Defect(y0, x0, scene.on_surface(shape > 0, y0, x0), bg * (0.45 - 0.3 * core))


def pit(through: bool = False) -> Painter:
    """A dark elliptical cavity with a lit rim on one side and a shadow on the other;
    ``through`` makes a hole (uniformly dark bottom)."""

    def paint(scene: Scene, rng: np.random.Generator, size: float) -> Defect:
        radius = max(3.0, size / 2)
        rim = max(2.0, 0.25 * radius)
        cx, cy = scene.surface_point(rng, radius + rim)
        y0, y1, x0, x1 = _window(scene, cx, cy, radius + rim + 2)
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        aspect, rot = rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
        v = (-(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)) / aspect
        r = np.sqrt(u ** 2 + v ** 2)
        light = np.cos(np.arctan2(yy - cy, xx - cx) - rng.uniform(0, 2 * np.pi))
        bg = scene.image[y0:y1, x0:x1]
        if through:
            inside = bg * 0.08 + 8
        else:
            depth = np.clip(1 - (r / radius) ** 2, 0, 1)[..., None]
            inside = bg * (0.55 - 0.4 * depth) * (1 + 0.25 * light[..., None])
        ring = bg * (1 + 0.55 * light[..., None])
        paint_ = np.where((r <= radius)[..., None], inside, ring)
        return Defect(y0, x0, scene.on_surface(r <= radius + rim, y0, x0), paint_)

    return paint


def stain(color: tuple[float, float, float], strength: float = 0.75,
          matte: bool = False) -> Painter:
    """A soft irregular blob that shifts the colour (rust, oil, residue); ``matte`` also
    wipes out the texture, like an unfinished or damaged surface."""

    def paint(scene: Scene, rng: np.random.Generator, size: float) -> Defect:
        radius = size / 2
        cx, cy = scene.surface_point(rng, radius * 0.6)
        y0, y1, x0, x1 = _window(scene, cx, cy, radius * 1.4)
        hh, ww = y1 - y0, x1 - x0
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        aspect = rng.uniform(0.5, 1.0)
        field = 1 - np.sqrt((xx - cx) ** 2 + ((yy - cy) / aspect) ** 2) / radius
        field += 0.25 * smooth_noise(hh, ww, rng, cell=max(3.0, radius / 2))
        shape = field > 0.1
        alpha = (strength * np.clip(0.35 + (field - 0.1) / 0.4, 0, 1))[..., None]
        bg = scene.image[y0:y1, x0:x1]
        source = cv2.blur(bg, (max(3, int(radius / 3)) | 1, ) * 2) if matte else bg
        target = np.float32(color) * (0.7 + 0.3 * source / max(float(source.mean()), 1.0))
        shape = scene.on_surface(shape, y0, x0)
        return Defect(y0, x0, shape, bg * (1 - alpha) + target * alpha)

    return paint


def spot(color: tuple[float, float, float]) -> Painter:
    """A small sharp-edged foreign particle or inclusion with a grainy body."""

    def paint(scene: Scene, rng: np.random.Generator, size: float) -> Defect:
        radius = max(3.0, size / 2)
        cx, cy = scene.surface_point(rng, radius)
        y0, y1, x0, x1 = _window(scene, cx, cy, radius * 1.6)
        hh, ww = y1 - y0, x1 - x0
        shape = _blob(hh, ww, cx - x0, cy - y0, radius, rng, roughness=0.6,
                      aspect=rng.uniform(0.5, 1.0))
        grain = 1 + 0.15 * smooth_noise(hh, ww, rng, cell=2.0)[..., None]
        return Defect(y0, x0, scene.on_surface(shape, y0, x0), np.float32(color) * grain)

    return paint


def _edge_point(scene: Scene, rng: np.random.Generator) -> tuple[float, float] | None:
    if scene.object_mask is None or len(scene.edge_points()) == 0:
        return None
    y, x = scene.edge_points()[int(rng.integers(len(scene.edge_points())))]
    return float(x), float(y)


def _edge_blob(scene: Scene, rng: np.random.Generator, size: float,
               roughness: float) -> tuple[int, int, int, int, np.ndarray] | None:
    """A rough blob of diameter ``size`` centred on a random point of the part's edge, as
    its window ``(y0, y1, x0, x1)`` of the image and its mask there; ``None`` when the
    image shows no part edge."""
    point = _edge_point(scene, rng)
    if point is None:
        return None
    radius = size / 2
    y0, y1, x0, x1 = _window(scene, point[0], point[1], radius * 1.6)
    blob = _blob(y1 - y0, x1 - x0, point[0] - x0, point[1] - y0, radius, rng,
                 roughness=roughness)
    return y0, y1, x0, x1, blob


def chip(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """A notch broken out of the part's edge: the fixture shows through, a dark
    fracture face lines the notch."""
    found = _edge_blob(scene, rng, size, roughness=0.5)
    if found is None:
        return None
    y0, y1, x0, x1, blob = found
    radius = size / 2
    shape = blob & scene.object_mask[y0:y1, x0:x1]
    # the fracture face: the band of the notch bordering the remaining part
    rest = (scene.object_mask[y0:y1, x0:x1] & ~blob).astype(np.uint8)
    face_width = max(2, int(0.2 * radius))
    near_rest = cv2.dilate(rest, np.ones((2 * face_width + 1, ) * 2, np.uint8)) > 0
    face = scene.material[y0:y1, x0:x1] * 0.45
    return Defect(y0, x0, shape, np.where(near_rest[..., None], face,
                                          scene.under[y0:y1, x0:x1]))


def burr(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """Extra material stuck out of the part's edge (a burr or flash)."""
    found = _edge_blob(scene, rng, size, roughness=0.7)
    if found is None:
        return None
    y0, y1, x0, x1, blob = found
    shape = blob & ~scene.object_mask[y0:y1, x0:x1]
    return Defect(y0, x0, shape, scene.material[y0:y1, x0:x1] * 0.85)


def missing_pad(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """A pad that was never plated: bare board with a faint outline remains."""
    if not scene.pads:
        return None
    cy, cx, r = scene.pads[int(rng.integers(len(scene.pads)))]
    y0, y1, x0, x1 = _window(scene, cx, cy, r + 3)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    under = scene.under[y0:y1, x0:x1]
    outline = (np.abs(d - r) < 1.2)[..., None]
    return Defect(y0, x0, d <= r + 1.5, np.where(outline, under * 1.5 + 20, under * 0.85))


def _trace_point(scene: Scene, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A point on a trace's straight run, and the run's unit direction."""
    path = scene.traces[int(rng.integers(len(scene.traces)))]
    i = int(rng.integers(len(path) - 1))
    a, b = path[i].astype(np.float64), path[i + 1].astype(np.float64)
    direction = (b - a) / max(np.linalg.norm(b - a), 1e-6)
    return a + rng.uniform(0.3, 0.7) * (b - a), direction


def open_trace(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """A gap etched through a trace: the copper between two ragged ends is gone."""
    if not scene.traces:
        return None
    point, direction = _trace_point(scene, rng)
    half = max(3.0, size / 4)
    y0, y1, x0, x1 = _window(scene, point[0], point[1], half + scene.trace_width + 3)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    along = (xx - point[0]) * direction[0] + (yy - point[1]) * direction[1]
    ragged = half * (1 + 0.3 * smooth_noise(y1 - y0, x1 - x0, rng, cell=3.0))
    copper = cv2.dilate(scene.object_mask[y0:y1, x0:x1].astype(np.uint8),
                        np.ones((3, 3), np.uint8)) > 0
    return Defect(y0, x0, (np.abs(along) <= ragged) & copper, scene.under[y0:y1, x0:x1] * 0.9)


def spur(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """A spike of unwanted tinned copper growing sideways out of a trace."""
    if not scene.traces:
        return None
    point, direction = _trace_point(scene, rng)
    normal = np.array([-direction[1], direction[0]]) * rng.choice([-1, 1])
    tip = point + normal * (scene.trace_width / 2 + max(6.0, size / 2))
    y0, y1, x0, x1 = _window(scene, *(point + tip) / 2, max(6.0, size / 2) + scene.trace_width)
    shape = np.zeros((y1 - y0, x1 - x0), np.uint8)
    base = max(2, int(0.8 * scene.trace_width))
    poly = np.stack([point + direction * base, tip, point - direction * base]) - [x0, y0]
    cv2.fillPoly(shape, [_fixed(poly)], 1, cv2.LINE_8, SUBPIXEL)
    extra = (shape > 0) & ~scene.object_mask[y0:y1, x0:x1]
    return Defect(y0, x0, extra, scene.material[y0:y1, x0:x1])


def extra_copper(scene: Scene, rng: np.random.Generator, size: float) -> Defect | None:
    """An island of copper left where the board should be bare."""
    radius = max(3.0, size / 2)
    cx, cy = scene.surface_point(rng, radius)
    y0, y1, x0, x1 = _window(scene, cx, cy, radius * 1.6)
    blob = _blob(y1 - y0, x1 - x0, cx - x0, cy - y0, radius, rng, roughness=0.6)
    if scene.object_mask is not None and (blob & scene.object_mask[y0:y1, x0:x1]).any():
        return None
    return Defect(y0, x0, blob, scene.material[y0:y1, x0:x1])
