"""Large photos layer by layer: the generator run one norm-to-norm step at a time over the whole photo.

Every layer norm of the generator normalises over (C, H, W) of the whole feature map, so its two numbers
exist only once every pixel of its input does. Here the photo goes through the network one *step* at a time
(what lies between two norms: the previous norm and activation, perhaps a residual or an upsample, then one
convolution), tile by tile. Each step's output is kept whole (:class:`FeatureMap`: in RAM while the plan
allows, else in an unlinked temporary file) and its exact moments are summed as its tiles are written; the
next step reads its tiles back with only the pixels its one convolution reaches (1-3 px of its own
resolution). One pass of compute plus that I/O, and the statistics are the whole photo's: the result is the
whole run's, whatever the tile size.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import LRELU_SLOPE, ConvNormLReLU, Generator, InvertedResBlock, LayerNorm, NormStats, fused_moments


class TempSpaceError(RuntimeError):
    """The temporary folder has no room for the feature maps that do not fit the memory budget."""


@dataclass(frozen=True)
class Step:
    """Input map -> (norm, activation, residual) -> (upsample) -> one VALID convolution over reflect padding."""

    conv: nn.Conv2d
    norm: LayerNorm | None   # applied to the stored input first (None: the input is the photo itself)
    act: bool                # leaky ReLU after that norm
    add_residual: bool       # the kept residual is added to the normalised input (an inverted residual block's end)
    keep_residual: bool      # the (normalised) input is kept as the residual of the block this step starts
    upsample: bool           # x2 upsample (tf1) or to the size before the matching downsample (pytorch-port)

    @property
    def kernel(self) -> int:
        return self.conv.kernel_size[0]

    @property
    def stride(self) -> int:
        return self.conv.stride[0]


def steps_of(model: Generator) -> tuple[list[Step], LayerNorm, nn.Module]:
    """The generator as steps (one per layer norm), plus the last norm and the output layer that follow them."""
    steps: list[Step] = []
    norm: LayerNorm | None = None
    act = add = False
    upsample_next = False

    def conv_step(conv: nn.Conv2d, keep: bool = False) -> None:
        nonlocal upsample_next
        steps.append(Step(conv, norm, act, add, keep, upsample_next))
        upsample_next = False

    for stage in (model.block_a, model.block_b, model.block_c, model.block_d, model.block_e):
        if stage is model.block_d or stage is model.block_e:
            upsample_next = True
        for layer in stage:
            if isinstance(layer, ConvNormLReLU):
                conv_step(layer._modules["1"])
                norm, act, add = layer._modules["2"], True, False
            elif isinstance(layer, InvertedResBlock):
                expand, depthwise, project, last = layer.layers
                conv_step(expand._modules["1"], keep=layer.residual)
                norm, act, add = expand._modules["2"], True, False
                conv_step(depthwise._modules["1"])
                norm, act, add = depthwise._modules["2"], True, False
                conv_step(project)
                norm, act, add = last, False, layer.residual
            else:
                raise TypeError(f"no layer-by-layer rule for {type(layer).__name__}")
    if add or norm is None:
        raise TypeError("the generator must end with a conv-norm-activation layer")
    return steps, norm, model.out_layer


# --- index maps: which input rows (or columns) a range of a step's output reads ---------------------

def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    i = np.where(i < 0, -i, i)
    return np.where(i >= n, 2 * (n - 1) - i, i)


def conv_input_range(a: int, b: int, kernel: int, stride: int) -> tuple[int, int]:
    """Positions (before reflection at the map's ends) that output positions ``a:b`` of the padded conv read."""
    if stride == 2:  # upstream's stride-2 padding: nothing before, one reflected row/column after
        return 2 * a, 2 * (b - 1) + kernel
    p = kernel // 2
    return a - p, b + p


def conv_input_index(a: int, b: int, n: int, kernel: int, stride: int) -> np.ndarray:
    """Indices (into a map of length ``n``) of what output positions ``a:b`` of the padded conv read, in order."""
    return _reflect(np.arange(*conv_input_range(a, b, kernel, stride)), n)


def upsample_source(j: np.ndarray, n: int, m: int, flavour_resize: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upsampled positions ``j`` (of ``m``) of a map of length ``n``: (left source, right source, right weight)."""
    if flavour_resize == "tf1":  # source = j / 2, the far edge repeated (TF1 legacy resize)
        i0 = j // 2
        w = (j % 2) * 0.5
    else:  # align_corners=True, as the pytorch-port flavour resizes
        scale = np.float32((n - 1) / (m - 1)) if m > 1 else np.float32(0)
        src = j.astype(np.float32) * scale
        i0 = np.floor(src).astype(np.int64)
        w = src - i0
    return i0, np.minimum(i0 + 1, n - 1), np.asarray(w, np.float32)


# --- feature maps kept between steps ----------------------------------------------------------------

class FeatureMap:
    """One whole C x H x W map stored row-major as (H, W, C): a tensor in RAM, or an unlinked temporary file.

    The file is read and written with pread/pwrite, so it never counts in the process's RSS (a memory-mapped
    file would), and it disappears when closed, or with the process.
    """

    def __init__(self, channels: int, height: int, width: int, dtype: torch.dtype, folder: str | None) -> None:
        self.shape = (height, width, channels)
        self.dtype = dtype
        self.itemsize = torch.empty((), dtype=dtype).element_size()
        self.nbytes = height * width * channels * self.itemsize
        self._ram: torch.Tensor | None = None
        self._file = None
        if folder is None:
            self._ram = torch.empty(self.shape, dtype=dtype)
        else:
            self._file = tempfile.TemporaryFile(dir=folder, prefix="animegan-map-")  # noqa: SIM115 - close()
            self._file.truncate(self.nbytes)

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def close(self) -> None:
        self._ram = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, r0: int, c0: int, y: torch.Tensor) -> None:
        """Store ``y`` (1 x C x h x w) at rows r0.., columns c0.."""
        block = y[0].permute(1, 2, 0).to(self.dtype)
        if self._ram is not None:
            self._ram[r0:r0 + block.shape[0], c0:c0 + block.shape[1]] = block
            return
        raw = block.contiguous().view(torch.uint8).numpy()  # (h, w, C * itemsize)
        fd, (_, width, channels) = self._file.fileno(), self.shape
        row_bytes = width * channels * self.itemsize
        if block.shape[1] == width:
            os.pwrite(fd, raw, r0 * row_bytes)
            return
        for i in range(raw.shape[0]):
            os.pwrite(fd, raw[i], (r0 + i) * row_bytes + c0 * channels * self.itemsize)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Rows r0:r1, columns c0:c1 as an (h, w, C) tensor (a view when in RAM)."""
        if self._ram is not None:
            return self._ram[r0:r1, c0:c1]
        _, width, channels = self.shape
        out = torch.empty((r1 - r0, c1 - c0, channels), dtype=self.dtype)
        raw = out.view(torch.uint8).numpy()
        fd, row_bytes = self._file.fileno(), width * channels * self.itemsize
        if c0 == 0 and c1 == width:
            _pread_into(fd, raw, r0 * row_bytes)
        else:
            for i in range(r1 - r0):
                _pread_into(fd, raw[i], (r0 + i) * row_bytes + c0 * channels * self.itemsize)
        return out


def _pread_into(fd: int, buf: np.ndarray, offset: int) -> None:
    view = memoryview(buf).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got <= 0:
            raise OSError(f"short read from a temporary feature map at {offset + done}")
        done += got


class _Moments:
    """A map's (mean, var) per sample, combined exactly across tiles in float64 (Chan et al.)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, y: torch.Tensor) -> None:
        mean, var = fused_moments(y)
        n = y[0].numel()
        mean, m2 = mean.double(), var.double() * n
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
        self.count = total

    def value(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.float(), (self.m2 / self.count).float()


# --- the run ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    rows: tuple[int, int]
    cols: tuple[int, int]


def tiles(height: int, width: int, area: int) -> list[Tile]:
    """Tiles of about ``area`` px covering a map: full-width (or full-height) bands when a band 8 px thick fits,
    else squares."""
    area = max(64, area)
    if width * 8 <= area:
        rows = max(8, area // width)
        n = math.ceil(height / rows)
        step = math.ceil(height / n)
        return [Tile((r, min(height, r + step)), (0, width)) for r in range(0, height, step)]
    if height * 8 <= area:  # a thin map: full-height column bands (small squares would cost a call each)
        cols = max(8, area // height)
        n = math.ceil(width / cols)
        step = math.ceil(width / n)
        return [Tile((0, height), (c, min(width, c + step))) for c in range(0, width, step)]
    side = max(8, math.isqrt(area))
    ny, nx = math.ceil(height / side), math.ceil(width / side)
    sy, sx = math.ceil(height / ny), math.ceil(width / nx)
    return [Tile((r, min(height, r + sy)), (c, min(width, c + sx)))
            for r in range(0, height, sy) for c in range(0, width, sx)]


@dataclass(frozen=True)
class MapSizes:
    """Every step's output size and channels, and the largest RAM the maps alive at once would take."""

    outputs: list[tuple[int, int, int]]  # (C, H, W) per step
    peak_bytes: int

    @property
    def steps(self) -> int:
        return len(self.outputs)


def map_sizes(model: Generator, height: int, width: int, itemsize: int) -> MapSizes:
    """What the maps of a run over an ``height`` x ``width`` (padded) photo take, without running it."""
    steps, _, _ = steps_of(model)
    outputs, sizes, peak = [], [], 0
    h, w, c_in, residual = height, width, 3, 0
    before = []
    for step in steps:
        if step.upsample:
            h, w = (2 * h, 2 * w) if model.spec.resize == "tf1" else before.pop()
        if step.stride == 2:
            before.append((h, w))
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        c = step.conv.out_channels
        in_bytes = sizes[-1] if sizes else 0
        out_bytes = c * h * w * itemsize
        if step.keep_residual:
            residual = c_in * h * w * itemsize
        peak = max(peak, in_bytes + out_bytes + residual)
        if step.add_residual and not step.keep_residual:
            residual = 0
        outputs.append((c, h, w))
        sizes.append(out_bytes)
        c_in = c
    return MapSizes(outputs, peak)


Progress = Callable[[], None]


def run_layerwise(model: Generator, padded: np.ndarray, to_input: Callable[[np.ndarray], torch.Tensor], *,
                  area: int, map_ram: int | None = None, stats: NormStats | None = None,
                  step_done: Progress | None = None, folder: str | None = None) -> np.ndarray:
    """The generator over a padded HxWx3 uint8 photo, one step at a time: HxWx3 uint8, as the whole run.

    ``area``: full-resolution pixels a tile may cover (a step at 1/2 or 1/4 resolution covers the same part of
    the photo with 4 or 16 times fewer pixels); ``map_ram``: bytes of feature maps to keep in RAM, the rest in
    temporary files in ``folder`` (None: the system's temporary folder); None keeps every map in RAM.
    ``stats``: None or ``mode="replay"`` is the whole photo's own statistics (replay: use those given);
    ``mode="smooth"`` blends each norm's exact statistics into a video's running average, as a whole run does.
    ``to_input``: uint8 pixels -> the model's input tensor; the caller sets inference mode and any autocast.
    ``step_done`` is called after every tile (an exception it raises stops the run; the files go with it).
    """
    params = next(model.parameters())
    dtype, device = params.dtype, params.device
    height, width = padded.shape[:2]
    steps, last_norm, out_layer = steps_of(model)
    itemsize = torch.empty((), dtype=dtype).element_size()
    sizes = map_sizes(model, height, width, itemsize)
    folder = folder or tempfile.gettempdir()
    in_ram = 0
    maps: list[FeatureMap] = []

    def new_map(c: int, h: int, w: int) -> FeatureMap:
        nonlocal in_ram
        nbytes = c * h * w * itemsize
        ram = map_ram is None or in_ram + nbytes <= map_ram
        if not ram:
            _check_space(folder, nbytes)
        m = FeatureMap(c, h, w, dtype, None if ram else folder)
        in_ram += 0 if m.on_disk else m.nbytes
        maps.append(m)
        return m

    def drop(m: FeatureMap | None) -> None:
        nonlocal in_ram
        if m is not None and m in maps:
            in_ram -= 0 if m.on_disk else m.nbytes
            maps.remove(m)
            m.close()

    values = list(stats.values) if stats is not None and stats.mode == "replay" else []
    smoothing = stats if stats is not None and stats.mode == "smooth" else None
    src: FeatureMap | None = None
    residual: FeatureMap | None = None
    before: list[tuple[int, int]] = []
    h, w = height, width
    try:
        for k, step in enumerate(steps):
            c_out, ho, wo = sizes.outputs[k]
            up_from = (h, w)
            if step.upsample:
                h, w = (2 * h, 2 * w) if model.spec.resize == "tf1" else before.pop()
            if step.stride == 2:
                before.append((h, w))
            scale = max(1, round(math.sqrt(height * width / (ho * wo))))
            dst = new_map(c_out, ho, wo)
            keep = new_map(step.conv.in_channels, h, w) if step.keep_residual else None
            norm_stats = _norm_stats(step.norm, values, k - 1)
            moments = _Moments()
            for t in tiles(ho, wo, area // (scale * scale)):
                y = _run_tile(step, t, src, padded, residual, keep, norm_stats, up_from, (h, w),
                              model.spec.resize, to_input)
                moments.add(y)
                dst.write(t.rows[0], t.cols[0], y.cpu() if y.device != torch.device("cpu") else y)
                del y
                if step_done:
                    step_done()
            if step.add_residual:
                drop(residual)
                residual = None
            if keep is not None:
                residual = keep
            drop(src)
            src = dst
            h, w = ho, wo
            mean, var = moments.value()
            if smoothing is not None:
                mean, var = smoothing.blend(mean, var)
            if len(values) <= k:
                values.append((mean.to(device), var.to(device)))
        out = np.empty((height, width, 3), np.uint8)
        norm_stats = _norm_stats(last_norm, values, len(steps) - 1)
        for t in tiles(height, width, area):
            z = _to_nchw(src.read(*t.rows, *t.cols), device)
            a = F.leaky_relu(last_norm(z, norm_stats()), LRELU_SLOPE, inplace=True)
            y = out_layer(a)
            out[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] = _pixels(y)
            if step_done:
                step_done()
        return out
    finally:
        for m in maps:
            m.close()


def step_count(model: Generator, height: int, width: int, area: int) -> int:
    """Tiles a run visits in all (every step's, and the output's): the total of its progress."""
    steps = steps_of(model)[0]
    sizes = map_sizes(model, height, width, 1)
    total = len(tiles(height, width, area))
    for k in range(len(steps)):
        _, ho, wo = sizes.outputs[k]
        scale = max(1, round(math.sqrt(height * width / (ho * wo))))
        total += len(tiles(ho, wo, area // (scale * scale)))
    return total


def disk_bytes(model: Generator, height: int, width: int, itemsize: int, map_ram: int | None) -> int:
    """Temporary disk a run may use at most: the maps alive at once, less what RAM keeps (an upper bound)."""
    peak = map_sizes(model, height, width, itemsize).peak_bytes
    return 0 if map_ram is None else max(0, peak - map_ram)


def _check_space(folder: str, nbytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < nbytes + (64 << 20):
        raise TempSpaceError(f"a large photo's feature maps need {nbytes / 2**30:.1f} GiB of temporary space in "
                             f"{folder}, which has {free / 2**30:.1f} GiB free; free some space, point TMPDIR at a "
                             "larger disk, or raise the memory budget")


def _norm_stats(norm: LayerNorm | None, values: list, index: int) -> Callable[[], NormStats]:
    """A fresh one-value replay for ``norm`` (its statistics are ``values[index]``) per call."""
    if norm is None:
        return lambda: NormStats()
    return lambda: NormStats(mode="replay", values=[values[index]])


def _to_nchw(hwc: torch.Tensor, device: torch.device) -> torch.Tensor:
    # (1, h, w, C) -> (1, C, h, w): a true channels_last layout, batch stride included (``[None]`` after the permute
    # leaves a batch stride of C, which sent reflect pads and convolutions down slow paths: 10x for the pads)
    x = hwc.unsqueeze(0).permute(0, 3, 1, 2)
    return x.to(device) if device.type != "cpu" else x


def _pixels(y: torch.Tensor) -> np.ndarray:
    y = ((y[0].float() + 1.0) * 127.5).clamp_(0, 255).round_()
    return y.to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _span(idx: np.ndarray) -> tuple[int, int]:
    return int(idx.min()), int(idx.max()) + 1


def _run_tile(step: Step, t: Tile, src: FeatureMap | None, padded: np.ndarray, residual: FeatureMap | None,
              keep: FeatureMap | None, norm_stats: Callable[[], NormStats], up_from: tuple[int, int],
              size: tuple[int, int], resize: str, to_input: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    """One tile of one step: read what its convolution reaches, normalise, (upsample,) convolve."""
    h, w = size  # the conv's input size (after any upsample)
    (ra, rb), (ca, cb) = conv_input_range(*t.rows, step.kernel, step.stride), conv_input_range(*t.cols, step.kernel, step.stride)
    # what exists of the conv's input range; the rest is reflected at the end, as the whole run's pads do
    (ja, jb), (ia, ib) = (max(0, ra), min(h, rb)), (max(0, ca), min(w, cb))
    if step.upsample and resize == "tf1":  # source rows/cols of upsampled ja:jb, one more for the odd last one
        (rlo, rhi), (clo, chi) = (ja // 2, min(up_from[0], (jb - 1) // 2 + 2)), (ia // 2, min(up_from[1], (ib - 1) // 2 + 2))
    elif step.upsample:
        r0, r1, rw = upsample_source(_reflect(np.arange(ra, rb), h), up_from[0], h, resize)
        c0, c1, cw = upsample_source(_reflect(np.arange(ca, cb), w), up_from[1], w, resize)
        (rlo, rhi), (clo, chi) = _span(np.concatenate([r0, r1])), _span(np.concatenate([c0, c1]))
    else:
        (rlo, rhi), (clo, chi) = (ja, jb), (ia, ib)
    if src is None:
        x = to_input(np.ascontiguousarray(padded[rlo:rhi, clo:chi]))
    else:
        z = _to_nchw(src.read(rlo, rhi, clo, chi), step.conv.weight.device)
        x = step.norm(z, norm_stats())
        del z
        if step.act:
            x = F.leaky_relu(x, LRELU_SLOPE, inplace=True)
        if step.add_residual:
            x = _to_nchw(residual.read(rlo, rhi, clo, chi), x.device) + x
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
    if keep is not None:  # this block's residual: its whole input, each tile writing the part it owns
        own = x[..., t.rows[0] - rlo:t.rows[1] - rlo, t.cols[0] - clo:t.cols[1] - clo]
        keep.write(t.rows[0], t.cols[0], own)
    if step.upsample and resize == "tf1":
        x = _upsample_tf1(x, rhi == up_from[0], chi == up_from[1])[..., ja - 2 * rlo:jb - 2 * rlo,
                                                                   ia - 2 * clo:ib - 2 * clo]
    elif step.upsample:
        hwc = _lerp(_lerp(x[0].permute(1, 2, 0), 1, c0 - clo, c1 - clo, cw), 0, r0 - rlo, r1 - rlo, rw)
        x = _to_nchw(hwc.to(x.dtype), x.device)
        ja, jb, ia, ib = ra, rb, ca, cb  # already reflected by the index maps
    pads = (ia - ca, cb - ib, ja - ra, rb - jb)
    if any(pads):
        x = F.pad(x, pads, mode="reflect")
    return step.conv(x)


def _upsample_tf1(x: torch.Tensor, last_row: bool, last_col: bool) -> torch.Tensor:
    """TF1's x2 resize of a part of a map, as :func:`animegan.model.upsample2x_tf1` computes it on the whole map:
    positions 2i..2i+1 of each source row/col i, the far edge repeated where the part ends at the map's edge (else
    the part carries one more source row/col than it needs, for its odd last position)."""
    x = F.pad(x, (0, int(last_col), 0, int(last_row)), mode="replicate") if last_row or last_col else x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(2 * h - 1, 2 * w - 1), mode="bilinear", align_corners=True)


def _lerp(x: torch.Tensor, dim: int, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> torch.Tensor:
    """Linear interpolation along ``dim`` between positions i0 and i1 with weight w, in float32."""
    shape = [1] * x.dim()
    shape[dim] = -1
    wt = torch.from_numpy(w).to(x.device).view(shape)
    a = x.index_select(dim, torch.from_numpy(i0).to(x.device)).float().mul_(1 - wt)
    return a.addcmul_(x.index_select(dim, torch.from_numpy(i1).to(x.device)).float(), wt)


def iter_steps(model: Generator) -> Iterator[Step]:
    """The steps in order (for tests and documentation)."""
    yield from steps_of(model)[0]
