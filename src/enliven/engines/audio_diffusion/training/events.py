"""Scalar logs TensorBoard reads, written without TensorBoard or protobuf at run time.

TensorBoard's own writer (``torch.utils.tensorboard``) needs the ``tensorboard`` package, whose current releases
require protobuf ≥ 5; MediaPipe pins us below 5. The file format is small and stable, so it is written here:
an ``events.out.tfevents.*`` file is a TFRecord stream (per record: length as uint64 little-endian, its masked
CRC-32C, the bytes, their masked CRC-32C) of ``Event`` protocol-buffer messages (tensorflow/core/util/event.proto:
``wall_time`` = 1 double, ``step`` = 2 int64, ``file_version`` = 3 string, ``summary`` = 5; ``Summary.value`` = 1;
``Summary.Value.tag`` = 1 string, ``simple_value`` = 2 float). View with any TensorBoard (``pip install
tensorboard`` in its own environment, ``tensorboard --logdir RUN/logs``). Every scalar also goes to
``log.jsonl`` beside it, one JSON object per line.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from pathlib import Path


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, kind: int) -> bytes:
    return _varint(number << 3 | kind)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def event(wall_time: float, step: int, *, file_version: str | None = None,
          scalars: dict[str, float] | None = None) -> bytes:
    """One serialised ``Event``."""
    out = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars:
        summary = b"".join(
            _bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", float(value)))
            for tag, value in scalars.items())
        out += _bytes_field(5, summary)
    return out


def record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc(header)) + data + struct.pack("<I", masked_crc(data))


class EventWriter:
    """Appends scalars to a fresh events file in ``folder`` and to ``folder/log.jsonl`` (flushed each write)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        self.path = self.folder / f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self._events = open(self.path, "ab")
        self._json = open(self.folder / "log.jsonl", "a")
        self._events.write(record(event(now, 0, file_version="brain.Event:2")))
        self._events.flush()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.time()
        self._events.write(record(event(now, step, scalars=values)))
        self._events.flush()
        self._json.write(json.dumps({"step": step, "time": now, **values}) + "\n")
        self._json.flush()

    def close(self) -> None:
        self._events.close()
        self._json.close()
