"""The AnimeGANv2 generator, faithful to the upstream TensorFlow 1 graph.

Tensors in, tensors out; no I/O. Parameter names follow the widely used
PyTorch port (bryandlee/animegan2-pytorch) so its ``.pt`` files load as-is.
How the weights compute is the style's *flavour* (:data:`FLAVOURS`), given to the constructor. The ``tf1``
flavour (the upstream checkpoints) follows the upstream TensorFlow graph exactly:

* REFLECT padding where upstream pads (k3 s1: 1 each side, k7: 3,
  stride 2: 0 top/left and 1 bottom/right), VALID convolutions;
* layer norm over (C, H, W) per sample, per-channel gamma/beta, eps 1e-12;
* TF1 ``resize_images`` bilinear x2 with the legacy pixel mapping
  (source = destination / 2, clamped at the far edge).

The ``pytorch-port`` flavour (weights trained with that port: the face-portrait ones) computes as the port
does: GroupNorm eps 1e-5 and ``align_corners=True`` resizes to the recorded feature sizes, any input size.

Layer-norm statistics can be recorded from one run and replayed in another
(:class:`NormStats`): that is what lets tiles of a large photo share the
statistics of the whole photo instead of each inventing its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-12     # the tf1 flavour's
LRELU_SLOPE = 0.2
SIZE_MULTIPLE = 4  # two stride-2 convs then two x2 upsamples: multiples of 4 keep their size (tf1)
ResizeMode = Literal["tf1", "align_corners"]


@dataclass(frozen=True)
class Flavour:
    """How a style's weights compute: what its model's constructor is given, and its sizing rule."""

    eps: float
    resize: ResizeMode
    size_multiple: int   # input sides are padded to a multiple of this (1: any size runs as it is)


FLAVOURS = {
    "tf1": Flavour(eps=LN_EPS, resize="tf1", size_multiple=SIZE_MULTIPLE),
    "pytorch-port": Flavour(eps=1e-5, resize="align_corners", size_multiple=1),
}


@dataclass
class NormStats:
    """Per-call layer-norm statistics, recorded in one pass and replayed in others.

    ``mode="off"``: each norm uses its own input's statistics (upstream behaviour).
    ``mode="record"``: same, and each norm's (mean, var) is appended to ``values``.
    ``mode="replay"``: each norm uses ``values[i]`` instead of its input's statistics.
    ``mode="smooth"``: each norm blends its input's statistics with ``values[i]`` (a running average over earlier
    frames, weight ``momentum``), uses the blend and stores it back; an empty ``values`` starts the average.
    One instance belongs to one call, so concurrent calls never share it (a smoothed video hands the same
    ``values`` list from one frame's call to the next).
    """

    mode: Literal["off", "record", "replay", "smooth"] = "off"
    values: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    cursor: int = 0
    momentum: float = 0.0  # smooth only: weight of the running average against this frame's own statistics

    def replaying(self) -> NormStats:
        return NormStats(mode="replay", values=self.values)

    def blend(self, mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
        """Smooth mode: the next norm's own moments blended into the running average, which becomes the blend."""
        i = self.cursor
        self.cursor += 1
        if i < len(self.values):
            a = self.momentum
            m0, v0 = self.values[i]
            mean, var = m0 * a + mean * (1 - a), v0 * a + var * (1 - a)
            self.values[i] = (mean, var)
        else:
            self.values.append((mean, var))
        return mean, var


NORM_LAYERS = 24  # layer norms in the generator, in the order a forward pass meets them


class LayerNorm(nn.Module):
    """TF contrib layer_norm (= GroupNorm with one group): moments over (C, H, W), per-channel affine."""

    def __init__(self, channels: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, stats: NormStats | None = None) -> Tensor:
        if stats is None or stats.mode == "off":
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        if stats.mode == "record":
            mean, var = layer_moments(x)
            stats.values.append((mean, var))
        elif stats.mode == "smooth":
            mean, var = stats.blend(*group_moments(x))
        else:
            mean, var = stats.values[stats.cursor]
            stats.cursor += 1
        # Scale and shift are worked out in fp32 and rounded once to the activations' dtype (bf16/fp16 runs).
        inv = torch.rsqrt(var.float() + self.eps)[:, None, None, None] * self.weight.float().view(1, -1, 1, 1)
        shift = self.bias.float().view(1, -1, 1, 1) - mean.float()[:, None, None, None] * inv
        # One fused multiply-add: ``x * inv + shift`` would hold a third full-size buffer at the peak, which
        # made the statistics run of a tiled 4K photo overshoot its memory budget by a third.
        return torch.addcmul(shift.to(x.dtype), x, inv.to(x.dtype))


def group_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """A frame's moments for smoothing, in fp32, from the fused group-norm kernel: ``var_mean`` over (C, H, W)
    made a smoothed frame take 1.37x a plain one on the CPU in fp32 (now the same time, agreeing to 1e-6) and
    1.73x in bf16 (now 1.22x). A reduced-precision activation is widened a few channels at a time, as in
    :func:`layer_moments`, and the chunks' moments combined exactly."""
    n, c, h, w = x.shape
    step = c if x.dtype == torch.float32 else MOMENT_CHANNELS
    means, variances, widths = [], [], []
    for i in range(0, c, step):
        part = x[:, i:i + step].float()
        _, mean, rstd = torch.native_group_norm(part, None, None, n, part.shape[1], h * w, 1, 0.0)
        means.append(mean.view(-1))
        variances.append(rstd.view(-1).pow(-2))
        widths.append(part.shape[1])
    if len(means) == 1:
        return means[0], variances[0]
    weight = torch.tensor(widths, dtype=torch.float32, device=x.device) / c  # a narrower last chunk counts less
    mean_c, var_c = torch.stack(means, 1), torch.stack(variances, 1)
    mean = (mean_c * weight).sum(dim=1)
    return mean, (var_c * weight).sum(dim=1) + ((mean_c - mean[:, None]).square() * weight).sum(dim=1)


MOMENT_CHANNELS = 16  # channels widened to fp32 at a time when a bf16/fp16 activation's moments are taken


def fused_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample mean and variance over (C, H, W) in fp32 from the fused group-norm kernel, as a whole run's norms
    compute them (a bf16/fp16 input runs its mixed-precision path: fp32 sums, no fp32 copy of the input)."""
    n, c, h, w = x.shape
    one = torch.ones(c, dtype=torch.float32, device=x.device) if x.dtype != torch.float32 else None
    zero = torch.zeros(c, dtype=torch.float32, device=x.device) if one is not None else None
    _, mean, rstd = torch.native_group_norm(x, one, zero, n, c, h * w, 1, 0.0)
    return mean.view(-1).float(), rstd.view(-1).float().pow(-2)


def layer_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample mean and (biased) variance over (C, H, W), accumulated in fp32.

    A reduced-precision activation is widened a few channels at a time (a full fp32 copy would add
    4 bytes per value to the statistics run's peak); per-channel moments combine exactly, since every
    channel has the same number of values: var = mean(var_c) + mean((mean_c - mean)^2).
    """
    if x.dtype == torch.float32:
        var, mean = torch.var_mean(x, dim=(1, 2, 3), unbiased=False)
        return mean, var
    parts = [torch.var_mean(x[:, c:c + MOMENT_CHANNELS].float(), dim=(2, 3), unbiased=False)
             for c in range(0, x.shape[1], MOMENT_CHANNELS)]
    var_c = torch.cat([v for v, _ in parts], dim=1)
    mean_c = torch.cat([m for _, m in parts], dim=1)
    mean = mean_c.mean(dim=1)
    return mean, var_c.mean(dim=1) + (mean_c - mean[:, None]).square().mean(dim=1)


_moments_fp32, _frame_moments = layer_moments, group_moments  # the names tests/test_video.py compares


def _reflect_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    if kernel == 1:
        return x
    if stride == 2:
        return F.pad(x, (0, 1, 0, 1), mode="reflect")
    p = kernel // 2
    return F.pad(x, (p, p, p, p), mode="reflect")


class ConvNormLReLU(nn.Module):
    """Reflect pad -> VALID conv -> layer norm -> leaky ReLU (children named 1 and 2 as in the PyTorch port)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.add_module("1", nn.Conv2d(cin, cout, kernel, stride, 0, groups=groups, bias=bias))
        self.add_module("2", LayerNorm(cout))

    def forward(self, x: Tensor, stats: NormStats | None = None, padded: bool = False) -> Tensor:
        """``padded``: ``x`` already carries this layer's reflect padding (see :func:`upsample2x_tf1_padded`)."""
        conv, norm = self._modules["1"], self._modules["2"]
        x = conv(x if padded else _reflect_pad(x, self.kernel, self.stride))
        return F.leaky_relu(norm(x, stats), LRELU_SLOPE, inplace=True)


class InvertedResBlock(nn.Module):
    """1x1 expand -> 3x3 depthwise (with bias) -> 1x1 project + norm; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = cin * expansion
        self.residual = cin == cout
        self.layers = nn.Sequential(
            ConvNormLReLU(cin, hidden, kernel=1),
            ConvNormLReLU(hidden, hidden, groups=hidden, bias=True),
            nn.Conv2d(hidden, cout, 1, bias=False),
            LayerNorm(cout),
        )

    def forward(self, x: Tensor, stats: NormStats | None = None) -> Tensor:
        expand, depthwise, project, norm = self.layers
        out = norm(project(depthwise(expand(x, stats), stats)), stats)
        return x + out if self.residual else out


class Stage(nn.Sequential):
    def forward(self, x: Tensor, stats: NormStats | None = None, padded: bool = False) -> Tensor:  # type: ignore[override]
        for i, layer in enumerate(self):
            x = layer(x, stats, padded=True) if padded and i == 0 else layer(x, stats)
        return x


def upsample2x_tf1(x: Tensor) -> Tensor:
    """TF1 ``ResizeBilinear`` x2 with ``align_corners=False, half_pixel_centers=False``.

    Output pixel j reads source position j / 2: even pixels copy input pixel i, odd ones average pixels
    i and i+1, the last one repeating the edge. That is exactly an ``align_corners=True`` resize of the
    input with one replicated row/column appended (n+1 -> 2n+1 samples, so source = j / 2), cropped to 2n.
    PyTorch's fused bilinear kernel does it in one pass (about 4x faster than building it from slices).
    """
    h, w = x.shape[-2:]
    return _upsample2x_tf1_extended(x)[..., : 2 * h, : 2 * w]


def upsample2x_tf1_padded(x: Tensor) -> Tensor:
    """``reflect_pad(upsample2x_tf1(x), 1)`` in one copy fewer: what the 3x3 conv after each upsample reads.

    The extended resize's extra last row/column (source n, clamped to n - 1) equals the reflection of row
    2n - 2, so only the top/left border still needs reflecting.
    """
    return F.pad(_upsample2x_tf1_extended(x), (1, 0, 1, 0), mode="reflect")


def _upsample2x_tf1_extended(x: Tensor) -> Tensor:
    h, w = x.shape[-2:]
    edged = F.pad(x, (0, 1, 0, 1), mode="replicate")
    return F.interpolate(edged, size=(2 * h + 1, 2 * w + 1), mode="bilinear", align_corners=True)


class Generator(nn.Module):
    """AnimeGANv2 G_net: NCHW in [-1, 1] -> NCHW in [-1, 1] (tf1: same size when sides are multiples of 4)."""

    def __init__(self, flavour: str = "tf1") -> None:
        super().__init__()
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}; one of: {', '.join(FLAVOURS)}")
        self.flavour = flavour
        self.spec = FLAVOURS[flavour]
        self.block_a = Stage(ConvNormLReLU(3, 32, kernel=7), ConvNormLReLU(32, 64, stride=2), ConvNormLReLU(64, 64))
        self.block_b = Stage(ConvNormLReLU(64, 128, stride=2), ConvNormLReLU(128, 128))
        self.block_c = Stage(
            ConvNormLReLU(128, 128),
            InvertedResBlock(128, 256),
            InvertedResBlock(256, 256),
            InvertedResBlock(256, 256),
            InvertedResBlock(256, 256),
            ConvNormLReLU(256, 128),
        )
        self.block_d = Stage(ConvNormLReLU(128, 128), ConvNormLReLU(128, 128))
        self.block_e = Stage(ConvNormLReLU(128, 64), ConvNormLReLU(64, 64), ConvNormLReLU(64, 32, kernel=7))
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())
        for m in self.modules():
            if isinstance(m, LayerNorm):
                m.eps = self.spec.eps

    def forward(self, x: Tensor, stats: NormStats | None = None, resize: ResizeMode | None = None) -> Tensor:
        """``resize`` overrides the flavour's upsampling (benchmarks compare the two)."""
        resize = resize or self.spec.resize
        size_in = x.shape[-2:]
        x = self.block_a(x, stats)
        size_half = x.shape[-2:]
        x = self.block_c(self.block_b(x, stats), stats)
        if resize == "tf1":  # the first layer after each upsample is a 3x3 conv: hand it its padding too
            x = self.block_d(upsample2x_tf1_padded(x), stats, padded=True)
            x = self.block_e(upsample2x_tf1_padded(x), stats, padded=True)
            return self.out_layer(x)
        x = self._upsample(x, size_half, resize)
        x = self.block_d(x, stats)
        x = self._upsample(x, size_in, resize)
        return self.out_layer(self.block_e(x, stats))

    @staticmethod
    def _upsample(x: Tensor, size: torch.Size, resize: ResizeMode) -> Tensor:
        if resize == "tf1":
            return upsample2x_tf1(x)
        # The popular PyTorch port's default: resize to the recorded size with align_corners=True.
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
