"""The simulator's own Avro client: reads schemas/avro/*.avsc and ids.json as any outside
client would, and frames records the Confluent way (0x00, 4-byte schema id, Avro binary).
It shares no code with the services nor with the suite's scripts."""
import functools
import io
import json
import os
import struct

import fastavro

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas", "avro")


def _strip(node):
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


@functools.lru_cache(maxsize=None)
def _table():
    with open(os.path.join(SCHEMA_DIR, "ids.json"), encoding="utf-8") as f:
        ids = json.load(f)
    by_name, by_id = {}, {}
    for name, sid in ids.items():
        with open(os.path.join(SCHEMA_DIR, name + ".avsc"), encoding="utf-8") as f:
            parsed = fastavro.parse_schema(_strip(json.load(f)), named_schemas={})
        by_name[name] = parsed
        by_id[sid] = parsed
    hist = os.path.join(SCHEMA_DIR, "history")
    if os.path.isdir(hist):
        for fn in os.listdir(hist):
            p = fn.split(".")
            if len(p) == 3 and p[2] == "avsc":
                with open(os.path.join(hist, fn), encoding="utf-8") as f:
                    by_id[int(p[1])] = fastavro.parse_schema(_strip(json.load(f)), named_schemas={})
    return ids, by_name, by_id


def encode(name, record):
    ids, by_name, _ = _table()
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, ids[name]))
    fastavro.schemaless_writer(buf, by_name[name], record)
    return buf.getvalue()


def decode(name, data):
    ids, by_name, by_id = _table()
    if data is None or len(data) < 5 or data[0] != 0:
        raise ValueError("not Confluent-framed Avro")
    sid = struct.unpack(">I", data[1:5])[0]
    if sid not in by_id:
        raise ValueError(f"unknown schema id {sid}")
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), by_id[sid], by_name[name])
