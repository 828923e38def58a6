"""Precision: the auto decision from given CPU capabilities, and bf16 runs against fp32 on real photos."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animegan import precision as precision_mod
from animegan import stylize
from animegan.engine import default_precision
from animegan.imaging import psnr
from animegan.precision import CpuCapabilities, decide
from animegan.result_cache import MemoryCache

REPO = Path(__file__).resolve().parents[1]
ZEN4 = CpuCapabilities(onednn_bf16=True, onednn_fp16=False, aten_capability="AVX512",
                       flags=frozenset({"avx512f", "avx512_bf16", "avx512_vnni"}))
SAPPHIRE_RAPIDS = CpuCapabilities(onednn_bf16=True, onednn_fp16=True, aten_capability="AVX512",
                                  flags=frozenset({"avx512f", "amx_tile", "amx_bf16", "amx_int8", "avx512_fp16"}))
SKYLAKE_X = CpuCapabilities(onednn_bf16=True, onednn_fp16=False, aten_capability="AVX512",  # oneDNN emulates bf16
                            flags=frozenset({"avx512f", "avx512bw"}))
AVX2_ONLY = CpuCapabilities(onednn_bf16=False, onednn_fp16=False, aten_capability="AVX2", flags=frozenset({"avx2"}))
NO_ONEDNN = CpuCapabilities(onednn_bf16=False, onednn_fp16=False, aten_capability="AVX512",
                            flags=frozenset({"avx512_bf16"}))
SCALAR_ATEN = CpuCapabilities(onednn_bf16=True, onednn_fp16=False, aten_capability="DEFAULT",  # ATEN_CPU_CAPABILITY=default
                              flags=frozenset({"avx512_bf16"}))


@pytest.mark.parametrize("caps, expected", [
    (ZEN4, "bf16"), (SAPPHIRE_RAPIDS, "bf16"), (SKYLAKE_X, "fp32"), (AVX2_ONLY, "fp32"), (NO_ONEDNN, "fp32"),
    (SCALAR_ATEN, "fp32"),
])
def test_auto_on_cpu_is_bf16_only_with_native_support(caps: CpuCapabilities, expected: str) -> None:
    assert decide("auto", "cpu", caps) == precision_mod.Decision(expected)
    assert decide(None, "cpu", caps).precision == expected


def test_auto_on_cuda_is_fp16_whatever_the_cpu() -> None:
    for caps in (ZEN4, AVX2_ONLY):
        assert decide("auto", "cuda", caps) == precision_mod.Decision("fp16")


def test_explicit_precisions_are_kept_and_emulation_is_said() -> None:
    assert decide("fp32", "cpu", ZEN4) == precision_mod.Decision("fp32")
    assert decide("BF16", "cpu", ZEN4) == precision_mod.Decision("bf16")
    emulated = decide("bf16", "cpu", SKYLAKE_X)
    assert emulated.precision == "bf16" and "emulated" in emulated.notice and "slower" in emulated.notice
    assert "emulated" in decide("fp16", "cpu", ZEN4).notice
    assert decide("fp16", "cpu", SAPPHIRE_RAPIDS).notice == ""
    assert decide("bf16", "cuda", AVX2_ONLY) == precision_mod.Decision("bf16")  # the GPU check is in resolve()
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16"):
        decide("int4", "cpu", ZEN4)


def test_this_machine_is_read_from_all_three_sources() -> None:
    caps = precision_mod.detect_cpu()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" in flags.split() or " avx512_bf16" in flags:
        assert "avx512_bf16" in caps.flags
    assert caps.onednn_bf16 == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert caps.aten_capability == torch.backends.cpu.get_cpu_capability()
    assert default_precision(torch.device("cpu")) == ("bf16" if caps.native_bf16 else "fp32")


def _photo(photos: dict[str, Path], name: str, side: int) -> np.ndarray:
    with Image.open(photos[name]) as im:
        im = im.convert("RGB")
        scale = side / max(im.size)
        return np.asarray(im.resize((round(im.width * scale) // 4 * 4, round(im.height * scale) // 4 * 4),
                                    Image.LANCZOS))


def test_bf16_stays_within_45_db_of_fp32_on_a_real_photo(registry, photos: dict[str, Path]) -> None:
    rgb = _photo(photos, "kyoto_street_kimono", 512)
    fp32 = stylize(rgb, "hayao", registry=registry, device="cpu", precision="fp32", max_side=0, tile=0)
    bf16 = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0, tile=0)
    assert (fp32.stats.precision, bf16.stats.precision) == ("fp32", "bf16")
    a, b = np.asarray(fp32.image), np.asarray(bf16.image)
    assert not np.array_equal(a, b)  # it really ran in bf16
    assert psnr(b, a) >= 45.0


def test_tiled_bf16_with_whole_image_statistics_matches_untiled_fp32(registry, photos: dict[str, Path]) -> None:
    rgb = _photo(photos, "cars_bridge_forest", 512)
    fp32 = stylize(rgb, "hayao", registry=registry, device="cpu", precision="fp32", max_side=0, tile=0)
    # 128 px tiles, layer by layer: each norm's statistics are the whole photo's, added up over the tiles in fp32
    # moments (bench/precision_quality.py covers more photos and sizes)
    tiled = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0, tile=128,
                    memory_budget="300M")
    assert tiled.stats.precision == "bf16" and tiled.stats.tiles >= 4
    assert "layer by layer: the whole photo's exact statistics" in tiled.stats.plan
    assert psnr(np.asarray(tiled.image), np.asarray(fp32.image)) >= 40.0


def test_emulated_bf16_runs_and_says_so(registry, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    no_bf16 = CpuCapabilities(onednn_bf16=True, onednn_fp16=False, aten_capability="AVX512", flags=frozenset())
    monkeypatch.setattr(precision_mod, "detect_cpu", lambda: no_bf16)
    rgb = _photo(photos, "railway_crossing", 128)
    auto = stylize(rgb, "hayao", registry=registry, device="cpu", max_side=0)
    assert auto.stats.precision == "fp32" and auto.stats.notices == []
    forced = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0)
    assert forced.stats.precision == "bf16"
    assert any("emulated" in n for n in forced.stats.notices)


def test_a_bf16_result_is_never_served_for_fp32(registry, photos: dict[str, Path]) -> None:
    cache = MemoryCache(64 << 20)
    rgb = _photo(photos, "railway_crossing", 128)
    first = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0, cache=cache)
    other = stylize(rgb, "hayao", registry=registry, device="cpu", precision="fp32", max_side=0, cache=cache)
    again = stylize(rgb, "hayao", registry=registry, device="cpu", precision="bf16", max_side=0, cache=cache)
    assert not first.stats.cached and not other.stats.cached and again.stats.cached
    assert (other.stats.precision, again.stats.precision) == ("fp32", "bf16")
    assert np.array_equal(np.asarray(again.image), np.asarray(first.image))


def test_unknown_precision_is_a_clear_error(registry) -> None:
    with pytest.raises(ValueError, match="unknown precision 'int3'"):
        stylize(np.zeros((16, 16, 3), np.uint8), "hayao", registry=registry, device="cpu", precision="int3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "no CUDA" in out.stdout
    assert list(tmp_path.iterdir()) == []  # no result file without a GPU


def test_cli_precision_fp32_writes_the_reference_pixels(photos: dict[str, Path], hayao_pt: Path, registry,
                                                        tmp_path: Path) -> None:
    from test_cli import run_cli, small_copy

    photo = small_copy(photos["railway_crossing"], tmp_path / "crossing.png", (96, 64))
    outs = {}
    for p in ("fp32", "bf16"):
        r = run_cli(photo, "--weights", hayao_pt, "--out", p, "--max-side", "0", "--precision", p, cwd=tmp_path,
                    cache=tmp_path / "cache")
        assert r.returncode == 0, r.stderr
        outs[p] = np.asarray(Image.open(tmp_path / p / "crossing_hayao.png").convert("RGB"))
    import conftest

    with conftest.torch_threads(conftest.PROCESS_TORCH_THREADS):  # the CLI's thread count: bit-exact below
        reference = stylize(photo, "hayao", registry=registry, device="cpu", precision="fp32", max_side=0).image
    assert np.array_equal(outs["fp32"], np.asarray(reference))
    assert not np.array_equal(outs["bf16"], outs["fp32"])
    bad = run_cli(photo, "--weights", hayao_pt, "--precision", "fp8", cwd=tmp_path, cache=tmp_path / "cache")
    assert bad.returncode == 2 and "--precision" in bad.stderr


def test_app_precision_from_flag_and_environment() -> None:
    from animegan.serving import load_config

    assert load_config([], {}).precision == "auto"
    assert load_config([], {"ANIMEGAN_PRECISION": "FP32"}).precision == "fp32"
    assert load_config(["--precision", "bf16"], {"ANIMEGAN_PRECISION": "fp32"}).precision == "bf16"
    with pytest.raises(SystemExit) as exc:  # a usage error, as for every other bad setting
        load_config([], {"ANIMEGAN_PRECISION": "fp8"})
    assert exc.value.code == 2


def test_fp16_on_a_cpu_runs_and_says_when_emulated(registry, photos: dict[str, Path]) -> None:
    rgb = _photo(photos, "railway_crossing", 96)
    res = stylize(rgb, "hayao", registry=registry, device="cpu", precision="fp16", max_side=0)
    ref = stylize(rgb, "hayao", registry=registry, device="cpu", precision="fp32", max_side=0)
    assert res.stats.precision == "fp16"
    assert any("emulated" in n for n in res.stats.notices) == (not precision_mod.detect_cpu().native_fp16)
    assert psnr(np.asarray(res.image), np.asarray(ref.image)) >= 45.0


def test_metrics_count_conversions_by_precision(registry, photos: dict[str, Path]) -> None:
    pytest.importorskip("prometheus_client")
    from animegan.metrics import Metrics

    metrics = Metrics()
    rgb = _photo(photos, "railway_crossing", 64)
    for p in ("fp32", "bf16", "bf16"):
        stats = stylize(rgb, "hayao", registry=registry, device="cpu", precision=p, max_side=0).stats
        metrics.record("hayao", "cpu", stats.seconds, stats)
    metrics.record("hayao", "cpu", 0.1, None, error_title="Unusable photo")  # a failure chose no precision
    text = metrics.exposition().decode()
    assert 'animegan_conversions_by_precision_total{device="cpu",precision="fp32"} 1.0' in text
    assert 'animegan_conversions_by_precision_total{device="cpu",precision="bf16"} 2.0' in text
