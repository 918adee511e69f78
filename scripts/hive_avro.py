"""The suite's Avro records for the Python tests, with fastavro: an implementation
independent of the C codec (common/avro_codec.c), reading the same files.

    encode(name, record_dict) -> bytes   Confluent framing: 0x00, the 4-byte big-endian
                                         schema id of schemas/avro/ids.json, Avro binary
    decode(name, data) -> dict           checks the framing, resolves the writer's schema
                                         (current or schemas/avro/history/<Name>.<id>.avsc)
                                         to the current one; raises ValueError
    payload_hash(name, record) -> str    OptimizationEvent.hash: SHA-256 hex of the record's
                                         Avro encoding with hash set to ""

Timestamps (timestamp-millis) are plain ints in milliseconds both ways: the logical
type does not change the bytes, and the services compare them as integers.
"""
import functools
import hashlib
import io
import json
import os
import struct

import fastavro

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "avro")


def _plain(node):
    """The schema without logicalType attributes."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _parse(path):
    with open(path, encoding="utf-8") as f:
        # Each file stands alone: named types such as OptimizationType are defined in several.
        return fastavro.parse_schema(_plain(json.load(f)), named_schemas={})


def _short(parsed):
    return parsed["name"].rsplit(".", 1)[-1]


@functools.lru_cache(maxsize=None)
def _schemas():
    """(ids by name, current schema by name, writer schema by id)."""
    with open(os.path.join(SCHEMA_DIR, "ids.json"), encoding="utf-8") as f:
        ids = json.load(f)
    current = {name: _parse(os.path.join(SCHEMA_DIR, name + ".avsc")) for name in ids}
    by_id = {sid: current[name] for name, sid in ids.items()}
    history = os.path.join(SCHEMA_DIR, "history")
    if os.path.isdir(history):
        for fname in sorted(os.listdir(history)):
            parts = fname.split(".")
            if len(parts) == 3 and parts[2] == "avsc":
                by_id[int(parts[1])] = _parse(os.path.join(history, fname))
    return ids, current, by_id


def schema_id(name):
    """The local schema id of record `name`."""
    return _schemas()[0][name]


def schema(name):
    """The current parsed schema of record `name` (logical types removed)."""
    return _schemas()[1][name]


def encode(name, record):
    """Frames `record` (a dict; fields with defaults may be left out) as record `name`."""
    ids, current, _ = _schemas()
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, ids[name]))
    fastavro.schemaless_writer(buf, current[name], record)
    return buf.getvalue()


def decode(name, data):
    """Decodes one framed record that must be a `name` record."""
    _, current, by_id = _schemas()
    if len(data) < 5:
        raise ValueError(f"record too short: {len(data)} bytes")
    magic, sid = struct.unpack(">bI", data[:5])
    if magic != 0:
        raise ValueError(f"bad magic byte 0x{magic & 0xff:02x}")
    writer = by_id.get(sid)
    if writer is None:
        raise ValueError(f"unknown schema id {sid}")
    if _short(writer) != name:
        raise ValueError(f"expected {name}, got {_short(writer)}")
    buf = io.BytesIO(data[5:])
    try:
        record = fastavro.schemaless_reader(buf, writer, current[name])
    except (EOFError, StopIteration, UnicodeDecodeError, IndexError) as e:
        raise ValueError(f"undecodable {name}: {e!r}") from e
    if buf.tell() != len(data) - 5:
        raise ValueError(f"{len(data) - 5 - buf.tell()} bytes of trailing garbage after the {name} record")
    return record


def payload_hash(name, record, field="hash"):
    """SHA-256 (lowercase hex) of the canonical payload: the Avro binary encoding of
    `record` with `field` set to "" (common/avro_codec.h, avro_codec_hash)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema(name), dict(record, **{field: ""}))
    return hashlib.sha256(buf.getvalue()).hexdigest()
