"""A plain re-statement of CBNetV2's composite Swin backbone (dual Swin, DHLC), written
from the Swin Transformer paper and the official checkpoint layout, independent of
MMDetection's Swin. Tests compare the project's CBSwinTransformer against it.

Official layout, per branch ``cb_modules.N``: ``patch_embed.{proj,norm}``,
``layers.S.blocks.B.{norm1,attn.{qkv,proj,relative_position_bias_table},norm2,
mlp.{fc1,fc2}}``, ``layers.S.downsample.{norm,reduction}``, output norms ``normS``;
composite 1x1 convs ``cb_linears.I.K`` (lead stage I from assisting stage I+K, K >= 1;
K = 0 is the identity). The lead branch has no patch embedding.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def relative_position_index(window: int) -> Tensor:
    """For every pair of positions in a window, the row of the bias table holding the
    bias for their relative offset (dy, dx), each offset shifted to be >= 0."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    dy = ys[:, None] - ys[None, :] + window - 1
    dx = xs[:, None] - xs[None, :] + window - 1
    return dy * (2 * window - 1) + dx


def to_windows(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B * nW, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def from_windows(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


class Attention(nn.Module):

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer('relative_position_index', relative_position_index(window))

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        n_windows, n, c = x.shape
        q, k, v = self.qkv(x).view(n_windows, n, 3, self.heads, c // self.heads) \
            .permute(2, 0, 3, 1, 4)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # (nW*B, heads, n, n)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        logits = logits + bias.view(n, n, self.heads).permute(2, 0, 1)[None]
        if mask is not None:  # (windows per image, n, n), 0 or -100
            per_image = mask.shape[0]
            logits = logits.view(-1, per_image, self.heads, n, n) + mask[None, :, None]
            logits = logits.view(-1, self.heads, n, n)
        out = logits.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n_windows, n, c))


class Block(nn.Module):

    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor) -> Tensor:
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        hp, wp = (math.ceil(s / self.window) * self.window for s in (h, w))
        y = F.pad(y, (0, 0, 0, wp - w, 0, hp - h))  # zeros after the norm, bottom/right
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        y = to_windows(y, self.window)
        y = self.attn(y, mask if self.shift else None)
        y = from_windows(y, self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y[:, :h, :w].reshape(b, h * w, c)
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class Downsample(nn.Module):
    """Concatenate each 2x2 neighbourhood (odd sides padded), normalise, halve."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                       x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class Layer(nn.Module):

    def __init__(self, dim: int, depth: int, heads: int, window: int,
                 downsample: bool) -> None:
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(
            Block(dim, heads, window, 0 if i % 2 == 0 else window // 2) for i in range(depth))
        self.downsample = Downsample(dim) if downsample else None

    def shift_mask(self, h: int, w: int, device: torch.device) -> Tensor:
        """-100 between positions of a shifted window that come from different regions
        of the (padded) map, 0 elsewhere."""
        ws, shift = self.window, self.window // 2
        hp, wp = (math.ceil(s / ws) * ws for s in (h, w))
        region = torch.zeros(1, hp, wp, 1, device=device)
        bands = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        for label, (rows, cols) in enumerate((r, c) for r in bands for c in bands):
            region[:, rows, cols] = label
        region = to_windows(region, ws).squeeze(-1)
        diff = region[:, None, :] - region[:, :, None]
        return torch.where(diff != 0, -100.0, 0.0)

    def forward(self, x: Tensor, h: int, w: int):
        mask = self.shift_mask(h, w, x.device)
        for block in self.blocks:
            x = block(x, h, w, mask)
        if self.downsample is None:
            return x, h, w, x, h, w
        return x, h, w, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class Swin(nn.Module):
    """One branch. ``forward`` takes tokens (or an image when it has a patch
    embedding) and per-stage token additions; returns the normalised stage outputs."""

    def __init__(self, dim: int, depths, heads, window: int, embed: bool) -> None:
        super().__init__()
        if embed:
            self.patch_embed = nn.Module()
            self.patch_embed.proj = nn.Conv2d(3, dim, 4, 4)
            self.patch_embed.norm = nn.LayerNorm(dim)
        n = len(depths)
        self.layers = nn.ModuleList(
            Layer(dim * 2**i, depths[i], heads[i], window, i < n - 1) for i in range(n))
        for i in range(n):
            self.add_module(f'norm{i}', nn.LayerNorm(dim * 2**i))

    def embed(self, img: Tensor) -> tuple[Tensor, int, int]:
        h, w = img.shape[-2:]
        img = F.pad(img, (0, -w % 4, 0, -h % 4))
        x = self.patch_embed.proj(img)
        hh, ww = x.shape[-2:]
        return self.patch_embed.norm(x.flatten(2).transpose(1, 2)), hh, ww

    def forward(self, x: Tensor, h: int, w: int, additions=None):
        outs = []
        for i, layer in enumerate(self.layers):
            if additions is not None:
                x = x + additions[i](h, w)
            out, oh, ow, x, h, w = layer(x, h, w)
            out = getattr(self, f'norm{i}')(out)
            outs.append(out.view(-1, oh, ow, out.shape[-1]).permute(0, 3, 1, 2))
        return outs


class ReferenceCBSwin(nn.Module):
    """Assisting branch ``cb_modules.0``, lead branch ``cb_modules.1`` (no patch
    embedding; starts from the assisting tokens), DHLC convs ``cb_linears``."""

    def __init__(self, dim: int, depths, heads, window: int) -> None:
        super().__init__()
        self.cb_modules = nn.ModuleList([Swin(dim, depths, heads, window, True),
                                         Swin(dim, depths, heads, window, False)])
        widths = [dim * 2**i for i in range(len(depths))]
        self.cb_linears = nn.ModuleList(
            nn.ModuleList(nn.Identity() if k == 0 else nn.Conv2d(widths[i + k], widths[i], 1)
                          for k in range(len(depths) - i))
            for i in range(len(depths)))

    def forward(self, img: Tensor):
        assist_net, lead_net = self.cb_modules
        x, h, w = assist_net.embed(img)
        assist = assist_net(x, h, w)

        def addition(i):
            def feed(hh, ww):
                total = 0
                for k, linear in enumerate(self.cb_linears[i]):
                    y = linear(assist[i + k])
                    if y.shape[-2:] != (hh, ww):
                        y = F.interpolate(y, size=(hh, ww), mode='nearest')
                    total = total + y
                return total.flatten(2).transpose(1, 2)
            return feed

        lead = lead_net(x, h, w, [addition(i) for i in range(len(self.cb_linears))])
        return assist, lead


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (non-zero composite convs, non-trivial norms), so
    that any mismatch in layout or semantics shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if 'norm' in name and name.endswith('weight'):
                param.copy_(1 + 0.1 * noise)
            else:
                param.copy_(0.1 * noise)
    return model


def cbnetv2_frozen_parameters(model: ReferenceCBSwin, frozen_stages: int) -> set[str]:
    """Names (CBNetV2's layout) of the parameters CBNetV2's ``frozen_stages`` freezes, in
    each branch: the patch embedding from 0 on (the absolute position embedding from 1,
    which this reference, like the authors' Swin-B, does not have), and ``layers[0 ..
    frozen_stages - 2]`` from 2 on. The stages' output norms ``normS`` stay trainable."""
    frozen = set()
    for b, branch in enumerate(model.cb_modules):
        prefixes = ['patch_embed.'] if frozen_stages >= 0 and hasattr(branch, 'patch_embed') \
            else []
        prefixes += [f'layers.{i}.' for i in range(frozen_stages - 1)]
        frozen |= {f'cb_modules.{b}.{name}' for name, _ in branch.named_parameters()
                   if name.startswith(tuple(prefixes))}
    return frozen
