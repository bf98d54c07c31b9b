"""Defect-free images of inspected parts, with the layers defect painters need.

A :class:`Scene` holds the clean image plus what removing material reveals (``under``),
what added material looks like (``material``), where removable material is
(``object_mask``), where surface defects may lie (``surface_mask``; ``None``: anywhere),
and for circuit boards the pads and traces that can go missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from . import textures

Texture = Callable[[int, int, np.random.Generator], np.ndarray]


@dataclass
class Scene:
    image: np.ndarray
    under: np.ndarray | None = None
    material: np.ndarray | None = None
    object_mask: np.ndarray | None = None
    surface_mask: np.ndarray | None = None
    pads: list[tuple[float, float, float]] = field(default_factory=list)  # (cy, cx, r)
    traces: list[np.ndarray] = field(default_factory=list)  # (n, 2) xy polylines
    trace_width: int = 0
    _edge: np.ndarray | None = field(default=None, repr=False)  # cache of edge_points()
    _surface_pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]

    def surface_point(self, rng: np.random.Generator, margin: float) -> tuple[float, float]:
        """A random ``(x, y)`` at least ``margin`` from the frame's border (as far as the
        frame allows), on the surface."""
        h, w = self.shape
        m = min(margin, 0.45 * min(h, w))
        if self.surface_mask is None:
            return rng.uniform(m, w - m), rng.uniform(m, h - m)
        if self._surface_pixels is None:
            self._surface_pixels = np.flatnonzero(self.surface_mask)
        for _ in range(20):
            y, x = divmod(int(self._surface_pixels[rng.integers(len(self._surface_pixels))]), w)
            if m <= x <= w - m and m <= y <= h - m:
                break
        return float(x), float(y)

    def on_surface(self, shape: np.ndarray, y0: int, x0: int) -> np.ndarray:
        """``shape`` (a window at ``(y0, x0)``) without what lies off the surface."""
        if self.surface_mask is None:
            return shape
        return shape & self.surface_mask[y0:y0 + shape.shape[0], x0:x0 + shape.shape[1]]

    def edge_points(self) -> np.ndarray:
        """``(n, 2)`` yx pixels on the object's outline that lie inside the frame."""
        if self._edge is None:
            mask = self.object_mask.astype(np.uint8)
            inner = cv2.erode(mask, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
            edge = (mask > 0) & (inner == 0)
            edge[:2], edge[-2:], edge[:, :2], edge[:, -2:] = False, False, False, False
            self._edge = np.argwhere(edge)
        return self._edge


def surface(texture: Texture) -> Callable[[int, int, np.random.Generator], Scene]:
    """A scene that is one textured surface filling the frame (no part outline)."""

    def build(h: int, w: int, rng: np.random.Generator) -> Scene:
        return Scene(texture(h, w, rng))

    return build


def _part_shape(kind: str, h: int, w: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Binary mask of a part and a [0, 1] height map used to shade it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    s = min(h, w)
    cy, cx = h * rng.uniform(0.42, 0.58), w * rng.uniform(0.42, 0.58)
    if kind in ('disc', 'ring', 'socket'):
        radius = s * rng.uniform(0.36, 0.46)
        r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / radius
        mask = r <= 1.0
        if kind == 'ring':
            mask &= r >= rng.uniform(0.45, 0.65)
        if kind == 'socket':  # a screw head with a hexagonal socket
            ang = rng.uniform(0, np.pi / 3) + np.arange(6) * np.pi / 3
            hexagon = np.stack([cx + 0.35 * radius * np.cos(ang),
                                cy + 0.35 * radius * np.sin(ang)], 1)
            socket = np.zeros((h, w), np.uint8)
            cv2.fillPoly(socket, [np.round(hexagon).astype(np.int32)], 1)
            mask &= socket == 0
        height = np.sqrt(np.clip(1 - r ** 2, 0, 1))
    elif kind == 'bar':
        angle = rng.uniform(-0.15, 0.15)
        half = h * rng.uniform(0.25, 0.38)
        d = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / half
        mask = np.abs(d) <= 1.0
        height = np.sqrt(np.clip(1 - d ** 2, 0, 1))
    elif kind == 'plate':
        angle = rng.uniform(-0.3, 0.3)
        hw, hh = w * rng.uniform(0.3, 0.45), h * rng.uniform(0.3, 0.45)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        mask = (np.abs(u) <= hw) & (np.abs(v) <= hh)
        height = np.clip(np.minimum(hw - np.abs(u), hh - np.abs(v)) / (0.1 * s), 0, 1)
    else:
        raise ValueError(f'unknown part shape {kind!r}')
    return mask, height.astype(np.float32)


def part_on_fixture(kind: str, texture: Texture,
                    fixture: Texture = textures.matte_background
                    ) -> Callable[[int, int, np.random.Generator], Scene]:
    """A part (disc, ring, screw head, bar or plate) lying on a dark fixture."""

    def build(h: int, w: int, rng: np.random.Generator) -> Scene:
        mask, height = _part_shape(kind, h, w, rng)
        back = fixture(h, w, rng)
        material = texture(h, w, rng)
        part = material * (0.55 + 0.55 * height[..., None])
        # a soft cast shadow; blurred at a quarter of the resolution (wide kernels are slow)
        small = cv2.resize(mask.astype(np.float32), (max(1, w // 4), max(1, h // 4)),
                           interpolation=cv2.INTER_AREA)
        shadow = cv2.resize(cv2.GaussianBlur(small, (0, 0), 0.005 * min(h, w) + 0.5), (w, h),
                            interpolation=cv2.INTER_LINEAR)
        back_shadowed = back * (1 - 0.5 * shadow[..., None])
        image = np.where(mask[..., None], part, back_shadowed)
        return Scene(image, under=back_shadowed, material=material, object_mask=mask,
                     surface_mask=mask)

    return build


def _trace_path(h: int, w: int, rng: np.random.Generator, step: float) -> np.ndarray:
    """A circuit trace: straight runs at multiples of 45 degrees."""
    pts = [np.array([rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h])]
    heading = int(rng.integers(0, 8))
    for _ in range(int(rng.integers(2, 5))):
        heading = (heading + int(rng.choice([-1, 0, 1, 2, -2]))) % 8
        direction = np.array([np.cos(heading * np.pi / 4), np.sin(heading * np.pi / 4)])
        nxt = pts[-1] + direction * step * rng.uniform(0.6, 2.0)
        pts.append(np.clip(nxt, [0.04 * w, 0.04 * h], [0.96 * w, 0.96 * h]))
    return np.round(np.array(pts)).astype(np.int32)


def pcb(h: int, w: int, rng: np.random.Generator) -> Scene:
    """Green solder-masked board: copper traces, tinned pads, drill holes, silkscreen."""
    s = min(h, w)
    board = textures.colorize(
        textures.fractal_noise(h, w, rng, cell=s / 6, octaves=4),
        textures.jitter_color((18, 80, 40), rng, 6), textures.jitter_color((48, 128, 66), rng, 6))
    weave = np.sin(np.arange(w) * 2 * np.pi / 5)[None, :] * np.sin(
        np.arange(h) * 2 * np.pi / 5)[:, None]
    board += (3.0 * weave)[..., None].astype(np.float32)
    width = max(3, int(round(s * rng.uniform(0.018, 0.028))))
    copper = np.zeros((h, w), np.uint8)
    crowding = max(1.0, h * w / 512 ** 2) ** 0.5  # larger boards carry more traces
    count = int(rng.integers(4, 8) * crowding)
    traces = [_trace_path(h, w, rng, s * 0.22) for _ in range(count)]
    for path in traces:
        cv2.polylines(copper, [path], False, 1, width)
    pads_mask = np.zeros((h, w), np.uint8)
    holes = np.zeros((h, w), np.uint8)
    pads = []
    for path in traces:
        for end in (path[0], path[-1]):
            r = width * rng.uniform(1.6, 2.4)
            pads.append((float(end[1]), float(end[0]), float(r)))
            cv2.circle(pads_mask, (int(end[0]), int(end[1])), int(round(r)), 1, -1)
            if rng.random() < 0.6:
                cv2.circle(holes, (int(end[0]), int(end[1])), max(1, int(round(0.4 * r))), 1, -1)
    silk = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.uniform(0, 0.8) * w), int(rng.uniform(0, 0.8) * h)
        cv2.rectangle(silk, (x0, y0), (x0 + int(0.15 * s), y0 + int(0.08 * s)), 1,
                      max(1, width // 3))
    copper_all = (copper | pads_mask) > 0
    masked_copper = board * 1.35 + np.float32([10, 22, 6])  # copper under green solder mask
    tin = textures.colorize(textures.fractal_noise(h, w, rng, cell=4, octaves=2),
                            (150, 128, 70), (235, 215, 150))
    image = np.where(silk[..., None] > 0, np.float32([225, 228, 220]), board)
    image = np.where(copper[..., None] > 0, masked_copper, image)
    image = np.where(pads_mask[..., None] > 0, tin, image)
    image = np.where(holes[..., None] > 0, np.float32([25, 25, 22]), image)
    return Scene(image.astype(np.float32), under=board, material=tin,
                 object_mask=copper_all & (holes == 0), pads=pads, traces=traces,
                 trace_width=width)
