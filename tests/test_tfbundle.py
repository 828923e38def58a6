"""The TensorFlow-free TF1 checkpoint reader, on the real upstream index files and a genuine TF-written checkpoint."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from animegan.weights.tfbundle import CheckpointError, crc32c, mask_crc, read_checkpoint, read_index

UPSTREAM = ("Hayao-64", "Shinkai-53", "Paprika-54")
G = "generator/G_MODEL/"
# Shapes the upstream TF graph (net/generator.py) gives its variables: conv kernels HWIO, depthwise HWC1.
KNOWN_SHAPES = {
    G + "A/Conv/weights": (7, 7, 3, 32),
    G + "A/Conv_1/weights": (3, 3, 32, 64),
    G + "A/LayerNorm/gamma": (32,),
    G + "B/Conv/weights": (3, 3, 64, 128),
    G + "C/Conv_1/weights": (3, 3, 256, 128),
    G + "C/r1/Conv/weights": (1, 1, 128, 256),
    G + "C/r1/r1/w": (3, 3, 256, 1),
    G + "C/r1/r1/bias": (256,),
    G + "C/r2/Conv/weights": (1, 1, 256, 512),
    G + "C/r4/r4/w": (3, 3, 512, 1),
    G + "C/r4/Conv_1/weights": (1, 1, 512, 256),
    G + "C/r4/2/beta": (256,),
    G + "D/Conv_1/weights": (3, 3, 128, 128),
    G + "E/Conv_2/weights": (7, 7, 64, 32),
    G + "E/LayerNorm_2/gamma": (32,),
    G + "out_layer/Conv/weights": (1, 1, 32, 3),
}
TOTAL_PARAMS = 2_143_552
DATA_BYTES = 8_574_208


@pytest.fixture(scope="module")
def tf_index(shared: Path) -> Path:
    folder = shared / "weights" / "tf-index"
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    return folder


@pytest.fixture(scope="module")
def genuine(hayao_ckpt: Path) -> dict[str, np.ndarray]:
    return read_checkpoint(hayao_ckpt)


def _copy_ckpt(prefix: Path, folder: Path) -> Path:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(f"{prefix}{suffix}", folder / f"ck.ckpt{suffix}")
    return folder / "ck.ckpt"


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))


# --- CRC32C --------------------------------------------------------------------------------------

def test_crc32c_known_answers() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    # RFC 3720 (iSCSI) appendix B.4 test vectors
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_crc32c_is_incremental() -> None:
    data = bytes(range(256)) * 5
    assert crc32c(data[700:], crc32c(data[:700])) == crc32c(data)


def test_mask_crc_matches_leveldb_definition() -> None:
    for crc in (0, 1, 0xE3069283, 0xFFFFFFFF):
        rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
        assert mask_crc(crc) == (rotated + 0xA282EAD8) % 2**32


# --- the real upstream index files ---------------------------------------------------------------

@pytest.mark.parametrize("stem", UPSTREAM)
def test_upstream_index_parses(tf_index: Path, stem: str) -> None:
    entries = read_index(tf_index / f"{stem}.ckpt.index")
    assert len(entries) == 77
    assert all(name.startswith(G) for name in entries)
    assert {e.dtype for e in entries.values()} == {1}  # DT_FLOAT
    assert all(e.numpy_dtype == np.dtype("<f4") for e in entries.values())
    for name, shape in KNOWN_SHAPES.items():
        assert entries[name].shape == shape, name
    counts = [int(np.prod(e.shape)) for e in entries.values()]
    assert sum(counts) == TOTAL_PARAMS
    # The data file is implied by the offsets: tensors packed back to back, 4 bytes per value.
    spans = sorted((e.offset, e.size, int(np.prod(e.shape))) for e in entries.values())
    assert spans[0][0] == 0
    for (off, size, count), (next_off, _, _) in itertools.pairwise(spans):
        assert size == 4 * count
        assert off + size == next_off
    assert max(e.offset + e.size for e in entries.values()) == DATA_BYTES
    assert all(e.shard_id == 0 for e in entries.values())
    # 25 convs (16 plain + 4 block 1x1 pairs + out), 4 depthwise kernels with 4 biases, 24 norms x 2
    assert sum(n.endswith("/weights") for n in entries) == 21
    assert sum(n.endswith("/w") for n in entries) == 4
    assert sum(n.endswith("/bias") for n in entries) == 4
    assert sum(n.endswith(("/gamma", "/beta")) for n in entries) == 48


def test_upstream_indexes_share_names_and_shapes(tf_index: Path) -> None:
    layouts = [{n: (e.shape, e.offset, e.size) for n, e in read_index(tf_index / f"{s}.ckpt.index").items()} for s in UPSTREAM]
    assert layouts[0] == layouts[1] == layouts[2]
    # ...but they are three different checkpoints: the stored per-tensor checksums differ.
    crcs = [tuple(e.crc32c for e in read_index(tf_index / f"{s}.ckpt.index").values()) for s in UPSTREAM]
    assert len(set(crcs)) == 3


# --- the genuine TF checkpoint -------------------------------------------------------------------

def test_genuine_checkpoint_reads_with_crc(genuine: dict[str, np.ndarray], hayao_ckpt: Path, tf_index: Path) -> None:
    upstream = read_index(tf_index / "Hayao-64.ckpt.index")
    assert list(genuine) == list(upstream)
    assert {n: a.shape for n, a in genuine.items()} == {n: e.shape for n, e in upstream.items()}
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in genuine.values())
    # Every stored checksum really is the masked CRC32C of that tensor's bytes.
    blob = Path(f"{hayao_ckpt}.data-00000-of-00001").read_bytes()
    assert len(blob) == DATA_BYTES
    entries = read_index(f"{hayao_ckpt}.index")
    for name, e in list(entries.items())[::9]:
        assert mask_crc(crc32c(blob[e.offset:e.offset + e.size])) == e.crc32c, name
        assert genuine[name].tobytes() == blob[e.offset:e.offset + e.size]


def test_flipped_byte_names_the_tensor(hayao_ckpt: Path, tmp_path: Path) -> None:
    prefix = _copy_ckpt(hayao_ckpt, tmp_path)
    victim = G + "C/r3/Conv_1/weights"
    entry = read_index(f"{prefix}.index")[victim]
    _flip(Path(f"{prefix}.data-00000-of-00001"), entry.offset + entry.size // 2)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(prefix)
    assert victim in str(info.value)
    assert "CRC32C" in str(info.value)
    # Turning verification off shows the CRC is what caught it.
    assert read_checkpoint(prefix, verify_crc=False)[victim].shape == (1, 1, 512, 256)


def test_truncated_data_file(hayao_ckpt: Path, tmp_path: Path) -> None:
    prefix = _copy_ckpt(hayao_ckpt, tmp_path)
    data = Path(f"{prefix}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:300_000])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(prefix)


def test_missing_data_file(hayao_ckpt: Path, tmp_path: Path) -> None:
    prefix = _copy_ckpt(hayao_ckpt, tmp_path)
    Path(f"{prefix}.data-00000-of-00001").unlink()
    with pytest.raises(CheckpointError, match="missing checkpoint data file"):
        read_checkpoint(prefix)


@pytest.mark.parametrize("keep", [0, 20, 47, 1000, 3071 - 1])
def test_truncated_index(tf_index: Path, tmp_path: Path, keep: int) -> None:
    index = tmp_path / "t.ckpt.index"
    index.write_bytes((tf_index / "Hayao-64.ckpt.index").read_bytes()[:keep])
    with pytest.raises(CheckpointError):
        read_index(index)


def test_not_an_index(tmp_path: Path, shared: Path) -> None:
    index = tmp_path / "x.index"
    index.write_bytes((shared / "reference" / "railway_crossing_input_768x512.png").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a TF checkpoint index"):
        read_index(index)


def test_corrupted_index_block(tf_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "c.ckpt.index"
    shutil.copyfile(tf_index / "Hayao-64.ckpt.index", index)
    _flip(index, 1500)  # inside the data block that holds the entries
    with pytest.raises(CheckpointError, match="corrupted"):
        read_index(index)


def test_any_flipped_index_byte_is_caught_or_harmless(tf_index: Path, tmp_path: Path) -> None:
    """A flip anywhere gives a CheckpointError (never a crash of another kind) or, in unused padding, the same entries."""
    original = (tf_index / "Paprika-54.ckpt.index").read_bytes()
    expected = read_index(tf_index / "Paprika-54.ckpt.index")
    index = tmp_path / "f.ckpt.index"
    positions = sorted(set(range(0, len(original), 29)) | set(range(len(original) - 60, len(original))))
    caught = 0
    for pos in positions:
        data = bytearray(original)
        data[pos] ^= 0xFF
        index.write_bytes(bytes(data))
        try:
            got = read_index(index)
        except CheckpointError:
            caught += 1
            continue
        assert got == expected, f"flip at byte {pos} changed the parsed entries without an error"
    assert caught > len(positions) // 2  # flips in the unused metaindex block and footer padding are harmless
