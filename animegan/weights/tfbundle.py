"""Read TensorFlow 1 checkpoints (tensor bundles) without TensorFlow.

A TF1 checkpoint is a pair of files: ``PREFIX.index``, an SSTable (LevelDB
table format) mapping tensor names to ``BundleEntryProto`` records, and
``PREFIX.data-00000-of-00001`` holding the raw little-endian tensor bytes.
Depending on TensorFlow would cost users ~500 MB for a 3 KB parser, so the
formats are decoded here: the table blocks, the protobuf wire format of the
two messages we need, and the masked CRC32C that guards every tensor.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # 1 byte compression type + 4 bytes masked crc32c

# tensorflow/core/framework/types.proto DataType -> numpy dtype (the ones a checkpoint of ours can hold)
TF_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 9: np.dtype("<i8"), 19: np.dtype("<f2")}


class CheckpointError(ValueError):
    """The checkpoint files are not a readable, intact TF1 tensor bundle."""


@dataclass(frozen=True)
class BundleEntry:
    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int  # masked, as stored

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype not in TF_DTYPES:
            raise CheckpointError(f"tensor {self.name!r} has unsupported TF dtype enum {self.dtype}")
        return TF_DTYPES[self.dtype]


# --- CRC32C (Castagnoli), table driven; checkpoints are small enough for pure Python ---

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data``; vectorised over 8 interleaved byte lanes would be faster, but 8 MB takes <1 s."""
    table = _CRC_TABLE
    crc ^= 0xFFFFFFFF
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """TF/LevelDB store CRCs 'masked' so that a CRC of data containing CRCs stays well distributed."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format: just enough for BundleHeaderProto / BundleEntryProto ---

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint in index file")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("malformed varint in index file")


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into (field number, value) pairs."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} in index file")
        if pos > len(buf):
            raise CheckpointError("truncated protobuf field in index file")
        out.append((field, value))
    return out


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, value in _fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = next((v for f, v in _fields(value) if f == 1), 0)
            dims.append(int(size))
        elif field == 3 and value:  # unknown_rank
            raise CheckpointError("tensor of unknown rank in checkpoint")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> BundleEntry:
    values: dict[int, int | bytes] = {}
    for field, value in _fields(buf):
        if field == 7:
            raise CheckpointError(f"tensor {name!r} is stored in slices (partitioned); not supported")
        values[field] = value
    return BundleEntry(
        name=name,
        dtype=int(values.get(1, 0)),
        shape=_parse_shape(values[2]) if 2 in values else (),
        shard_id=int(values.get(3, 0)),
        offset=int(values.get(4, 0)),
        size=int(values.get(5, 0)),
        crc32c=int(values.get(6, 0)),
    )


# --- SSTable ---

def _block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointError("index file is truncated (block past end of file)")
    block = data[offset:end]
    ctype = data[end]
    stored_crc = struct.unpack_from("<I", data, end + 1)[0]
    if mask_crc(crc32c(data[offset:end + 1])) != stored_crc:
        raise CheckpointError("index file is corrupted (block checksum mismatch)")
    if ctype != 0:
        raise CheckpointError(f"index block uses compression type {ctype}; only uncompressed tables are supported")
    return block


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise CheckpointError("index block too short")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointError("index block restart array is malformed")
    entries = []
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise CheckpointError("index block entry is malformed")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def read_index(index_path: str | Path) -> dict[str, BundleEntry]:
    """Parse a ``.index`` file into {tensor name: entry}, in the file's (sorted) order."""
    data = Path(index_path).read_bytes()
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(f"{index_path}: too small to be a checkpoint index ({len(data)} bytes)")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
        raise CheckpointError(f"{index_path}: not a TF checkpoint index (bad table magic)")
    _, _, pos = _handle(footer, 0)  # metaindex handle: unused
    index_offset, index_size, _ = _handle(footer, pos)
    entries: dict[str, BundleEntry] = {}
    header_seen = False
    for _, handle in _block_entries(_block(data, index_offset, index_size)):
        offset, size, _ = _handle(handle, 0)
        for key, value in _block_entries(_block(data, offset, size)):
            if key == b"":
                header = dict(_fields(value))
                if int(header.get(1, 1)) != 1:
                    raise CheckpointError(f"{index_path}: sharded checkpoints are not supported")
                if int(header.get(2, 0)) != 0:
                    raise CheckpointError(f"{index_path}: big-endian checkpoints are not supported")
                header_seen = True
                continue
            name = key.decode("utf-8")
            entries[name] = _parse_entry(name, value)
    if not header_seen:
        raise CheckpointError(f"{index_path}: missing bundle header")
    return entries


def data_path_for(prefix: str | Path) -> Path:
    return Path(f"{prefix}.data-00000-of-00001")


def index_path_for(prefix: str | Path) -> Path:
    return Path(f"{prefix}.index")


def read_checkpoint(prefix: str | Path, verify_crc: bool = True) -> dict[str, np.ndarray]:
    """Read every tensor of a single-shard TF1 checkpoint, checking sizes and per-tensor CRC32C."""
    entries = read_index(index_path_for(prefix))
    data_file = data_path_for(prefix)
    try:
        blob = data_file.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointError(f"missing checkpoint data file {data_file}") from exc
    tensors: dict[str, np.ndarray] = {}
    for name, entry in entries.items():
        dtype = entry.numpy_dtype
        count = int(np.prod(entry.shape, dtype=np.int64)) if entry.shape else 1
        if entry.size != count * dtype.itemsize:
            raise CheckpointError(f"tensor {name!r}: index says {entry.size} bytes, shape {entry.shape} needs {count * dtype.itemsize}")
        end = entry.offset + entry.size
        if end > len(blob):
            raise CheckpointError(f"{data_file} is truncated: tensor {name!r} ends at byte {end}, file has {len(blob)}")
        raw = blob[entry.offset:end]
        if verify_crc and mask_crc(crc32c(raw)) != entry.crc32c:
            raise CheckpointError(f"{data_file} is corrupted: CRC32C mismatch for tensor {name!r}")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(entry.shape).copy()
    return tensors
