"""TensorBoard event files without TensorBoard: `shoal export tensorboard RUN_ID... DIR`.

An event file is a sequence of TFRecords, each a serialized `Event` protobuf. The few fields used here are
written by hand (no protobuf, TensorFlow or TensorBoard dependency):

    record  = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)  (LE)
    Event   = 1: wall_time (double) | 2: step (int64) | 3: file_version (string) | 5: summary (Summary)
    Summary = 1: value (repeated Value)
    Value   = 1: tag (string) | 2: simple_value (float)

One event per logged step carries every key logged at that step, so a run's keys share one x axis in
TensorBoard, as they do in the dashboard. CRC-32C (Castagnoli) is computed with numpy across a batch of
records at once: pure Python would take minutes on a 1M-point run.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

FILE_VERSION = b"brain.Event:2"
BATCH = 20_000  # events encoded and checksummed at once


def _crc_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


CRC_TABLE = _crc_table()


def crc32c(records: list[bytes]) -> np.ndarray:
    """CRC-32C of each record, all at once: one table step per byte position across every record."""
    if not records:
        return np.zeros(0, dtype=np.uint32)
    lengths = np.fromiter((len(r) for r in records), dtype=np.int64, count=len(records))
    width = int(lengths.max())
    padded = np.zeros((len(records), width), dtype=np.uint8)
    flat = np.frombuffer(b"".join(records), dtype=np.uint8)
    mask = np.arange(width) < lengths[:, None]
    padded[mask] = flat
    crc = np.full(len(records), 0xFFFFFFFF, dtype=np.uint32)
    # Records are grouped by length so that each step only touches the records still that long.
    order = np.argsort(-lengths, kind="stable")
    padded, sorted_lengths = padded[order], lengths[order]
    alive = len(records)
    for i in range(width):
        while alive and sorted_lengths[alive - 1] <= i:
            alive -= 1
        part = crc[:alive]
        crc[:alive] = CRC_TABLE[(part ^ padded[:alive, i]) & 0xFF] ^ (part >> 8)
    out = np.empty_like(crc)
    out[order] = crc ^ np.uint32(0xFFFFFFFF)
    return out


def masked(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).astype(np.uint32)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _value_prefix(tag: str) -> bytes:
    """A Summary.value entry up to its float: field 1 (Value, length-delimited), the tag, field 2's key."""
    name = tag.encode()
    value = b"\x0a" + _varint(len(name)) + name + b"\x15"
    return b"\x0a" + _varint(len(value) + 4) + value


def _event(wall_time: float, step: int, body: bytes = b"", field: int = 5) -> bytes:
    head = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(step & 0xFFFFFFFFFFFFFFFF)
    if not body and field == 5:
        return head
    return head + bytes([field << 3 | 2]) + _varint(len(body)) + body


def _records(events: list[bytes]) -> bytes:
    headers = [struct.pack("<Q", len(e)) for e in events]
    header_crcs, data_crcs = masked(crc32c(headers)), masked(crc32c(events))
    return b"".join(
        h + struct.pack("<I", hc) + e + struct.pack("<I", dc)
        for h, hc, e, dc in zip(headers, header_crcs.tolist(), events, data_crcs.tolist(), strict=True)
    )


def write_events(
    directory: str | os.PathLike, keys: list[str], rows: Iterable[tuple[int, float, list[float | None]]]
) -> tuple[Path, int]:
    """Write `rows` ((step, wall time, one value or None per key)) as one event file in `directory`;
    returns its path and the number of events written (the file-version event not counted)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.shoal"
    prefixes = [_value_prefix(k) for k in keys]
    written = 0
    with path.open("wb") as f:
        f.write(_records([_event(time.time(), 0, FILE_VERSION, field=3)]))
        batch: list[bytes] = []
        for step, wall_time, values in rows:
            summary = b"".join(
                p + struct.pack("<f", v) for p, v in zip(prefixes, values, strict=True) if v is not None
            )
            if summary:
                batch.append(_event(float(wall_time), int(step), summary))
            if len(batch) >= BATCH:
                f.write(_records(batch))
                written, batch = written + len(batch), []
        f.write(_records(batch))
        written += len(batch)
    return path, written


def export_runs(client: Any, run_ids: list[int], directory: str | os.PathLike) -> list[tuple[int, Path, int]]:
    """Each run's full-resolution metrics (read through the API) into DIR/run-<id>[-<name>]/, one event
    file per run, so TensorBoard lists the runs side by side."""
    done = []
    for run_id in run_ids:
        run = client.run(run_id)
        table = client.history(run_id, as_frame=False)
        keys = [k for k in run["metric_keys"] if k not in ("step", "time")]
        rows = ((r["step"], r["time"], [r.get(k) for k in keys]) for r in table)
        name = f"run-{run_id}" + (f"-{_slug(run['name'])}" if run.get("name") else "")
        path, events = write_events(Path(directory) / name, keys, rows)
        done.append((run_id, path, events))
    return done


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:64]


# ---- reading back, for the tests and for checking a file by hand ------------------------------------------


def read_events(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Each event of a file written above: {wall_time, step, file_version | values: {tag: float}}. Raises
    ValueError on a bad checksum."""
    data = Path(path).read_bytes()
    headers, bodies, crcs, at = [], [], [], 0
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8].ljust(8, b"\0"))
        if at + 16 + length > len(data):
            raise ValueError(f"truncated or corrupt record at byte {at} of {path}")
        headers.append(data[at : at + 8])
        bodies.append(data[at + 12 : at + 12 + length])
        crcs.append(struct.unpack("<II", data[at + 8 : at + 12] + data[at + 12 + length : at + 16 + length]))
        at += 16 + length
    expected = np.array(crcs, dtype=np.uint32).reshape(-1, 2)
    bad = (masked(crc32c(headers)) != expected[:, 0]) | (masked(crc32c(bodies)) != expected[:, 1])
    if bad.any():
        raise ValueError(f"bad checksum in record {int(np.argmax(bad))} of {path}")
    return [_decode_event(body) for body in bodies]


def _read_varint(buf: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    at = 0
    while at < len(buf):
        key, at = _read_varint(buf, at)
        field, kind = key >> 3, key & 7
        value: int | bytes  # a varint, or the raw bytes of a fixed-width or length-delimited field
        if kind == 0:
            value, at = _read_varint(buf, at)
        elif kind == 1:
            value, at = buf[at : at + 8], at + 8
        elif kind == 5:
            value, at = buf[at : at + 4], at + 4
        elif kind == 2:
            length, at = _read_varint(buf, at)
            value, at = buf[at : at + length], at + length
        else:
            raise ValueError(f"wire type {kind} is not written here")
        yield field, value


def _decode_event(buf: bytes) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for field, value in _fields(buf):
        if field == 1:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2:
            event["step"] = value
        elif field == 3:
            event["file_version"] = value.decode()
        elif field == 5:
            values = {}
            for _, entry in _fields(value):
                parts = dict(_fields(entry))
                values[parts[1].decode()] = struct.unpack("<f", parts[2])[0]
            event["values"] = values
    return event
