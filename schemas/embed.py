#!/usr/bin/env python3
"""Embeds the Avro schemas in the build: schemas/avro/*.avsc + ids.json -> C table.

Usage: embed.py -o hive_schemas.c ids.json A.avsc B.avsc ... [history/A.1001.avsc ...]

Writes `const hive_schema_def_t hive_schemas[]` (declared in common/avro_codec.h):
one {name, local_id, current, json} per schema, and `hive_schemas_count`.

The ids are the Confluent schema ids written in front of every record when no
Schema Registry is configured. Rules, checked here so that a mistake fails the build:
  * ids.json maps every record name of schemas/avro/*.avsc to its id, and nothing else;
  * an id is never reused. When a record changes, copy its old .avsc to
    avro/history/<Name>.<old id>.avsc (so records already in Kafka stay readable),
    give the record a new id in ids.json, and list the history file in meson.build;
  * every record: namespace org.neuralhive.optimizer, a doc on the record and on each
    field, and `schema_version` (int, default 1) as its first field;
  * a named type defined in several files (e.g. OptimizationType) is defined identically.
Only the standard library is used, so the build needs no virtualenv.
"""
import argparse
import json
import os
import re
import sys

NAMESPACE = "org.neuralhive.optimizer"
HISTORY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([0-9]+)\.avsc$")


def fail(msg):
    sys.exit(f"embed.py: {msg}")


def check_record(path, schema):
    if schema.get("type") != "record":
        fail(f"{path}: top-level type must be a record")
    if schema.get("namespace") != NAMESPACE:
        fail(f"{path}: namespace must be {NAMESPACE}")
    fields = schema.get("fields") or []
    first = fields[0] if fields else {}
    if first.get("name") != "schema_version" or first.get("type") != "int" or first.get("default") != 1:
        fail(f"{path}: the first field must be schema_version (int, default 1)")


def walk_named(path, node, named):
    """Checks docs and collects named types (record, enum, fixed) by name."""
    if isinstance(node, list):
        for branch in node:
            walk_named(path, branch, named)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("record", "enum", "fixed"):
        name = node.get("name", "?")
        if kind != "fixed" and not node.get("doc"):
            fail(f"{path}: {kind} {name} has no doc")
        canon = json.dumps(node, sort_keys=True)
        if name in named and named[name][1] != canon:
            fail(f"{path}: {name} differs from its definition in {named[name][0]}")
        named.setdefault(name, (path, canon))
    if kind == "record":
        for field in node.get("fields", []):
            if not field.get("doc"):
                fail(f"{path}: field {node.get('name')}.{field.get('name')} has no doc")
            walk_named(path, field.get("type"), named)
    elif kind == "array":
        walk_named(path, node.get("items"), named)
    elif kind == "map":
        walk_named(path, node.get("values"), named)
    elif isinstance(kind, (dict, list)):
        walk_named(path, kind, named)


def c_bytes(text):
    """The text as a C array initializer (a string literal this long upsets -Wpedantic)."""
    data = list(text.encode("utf-8")) + [0]
    lines = []
    for i in range(0, len(data), 24):
        lines.append("    " + ", ".join(str(b) for b in data[i:i + 24]) + ",")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("ids")
    ap.add_argument("schemas", nargs="+")
    args = ap.parse_args()

    with open(args.ids, encoding="utf-8") as f:
        ids = json.load(f)
    if not isinstance(ids, dict) or not all(isinstance(v, int) and 0 < v < 2**31 for v in ids.values()):
        fail(f"{args.ids}: must map record names to ids in 1..2^31-1")
    if len(set(ids.values())) != len(ids):
        fail(f"{args.ids}: an id is used twice")

    entries = []  # (name, id, current, minified json)
    named = {}
    seen_ids = set()
    for path in args.schemas:
        base = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            try:
                schema = json.load(f)
            except ValueError as e:
                fail(f"{path}: not JSON: {e}")
        check_record(path, schema)
        name = schema["name"]
        history = HISTORY_RE.match(base)
        if os.path.basename(os.path.dirname(path)) == "history":
            if not history or history.group(1) != name:
                fail(f"{path}: a retired schema is named history/<Name>.<id>.avsc")
            sid, current = int(history.group(2)), 0
            if sid in ids.values():
                fail(f"{path}: id {sid} is the id of a current schema in ids.json")
        else:
            if base != name + ".avsc":
                fail(f"{path}: file name must be {name}.avsc")
            if name not in ids:
                fail(f"{args.ids}: no id for {name}")
            sid, current = ids[name], 1
            walk_named(path, schema, named)
        if sid in seen_ids:
            fail(f"{path}: id {sid} is used twice")
        seen_ids.add(sid)
        entries.append((name, sid, current, json.dumps(schema, separators=(",", ":"), ensure_ascii=False)))
    missing = set(ids) - {e[0] for e in entries if e[2]}
    if missing:
        fail(f"{args.ids}: ids for records with no .avsc: {', '.join(sorted(missing))}")

    out = ["/* Generated by schemas/embed.py from schemas/avro; do not edit. */",
           '#include "avro_codec.h"', ""]
    for i, (name, sid, current, text) in enumerate(entries):
        out.append(f"/* {name}, id {sid}{'' if current else ', retired'} */")
        out.append(f"static const char schema_{i}[] = {{\n{c_bytes(text)}\n}};")
    out.append("")
    out.append("const hive_schema_def_t hive_schemas[] = {")
    for i, (name, sid, current, _) in enumerate(entries):
        out.append(f'    {{"{name}", {sid}, {current}, schema_{i}}},')
    out.append("};")
    out.append("const size_t hive_schemas_count = sizeof(hive_schemas) / sizeof(hive_schemas[0]);")
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
