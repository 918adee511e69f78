#!/usr/bin/env python3
"""Embeds the Avro schemas in the build: schemas/avro/*.avsc + ids.json -> C table.

Usage: embed.py -o hive_schemas.c [--rules hive_rules.c] ids.json A.avsc B.avsc ... [history/A.1001.avsc ...]

Writes `const hive_schema_def_t hive_schemas[]` (declared in common/avro_codec.h):
one {name, local_id, current, json} per schema, and `hive_schemas_count`.

With --rules, also writes `const avro_record_rules_t hive_record_rules[]` (declared
in common/avro_validate.h): the accepted ranges of every field of every record of
the current schemas, read from the `hive.*` attributes of the .avsc files (Avro
ignores attributes it does not know), with the defaults below for what a field
does not declare. A field attribute applies to the field's values at any depth:
the non-null branch of a union, the items of an array, the values of a map.
  "hive.range": [lo, hi]      int, long, float, double: lo <= x <= hi
                              (timestamp-millis defaults to years 2000..2100,
                              schema_version to 1..1000)
  "hive.finite": false        float, double: allow NaN and +-Infinity (default: refused)
  "hive.minLength", "hive.maxLength"
                              string: length in bytes (default 0..4096)
  "hive.pattern": "name" | "line" | "text" | "any"
                              string: name = [A-Za-z0-9][A-Za-z0-9._:/@+-]*;
                              line = no control character; text = none but tab and
                              newlines (the default); any = no further rule. Every
                              string must be UTF-8 without a NUL byte.
  "hive.maxItems": n          array, map: at most n entries (default 10000)
  "hive.keyPattern", "hive.keyMaxLength"
                              map keys: as hive.pattern (default "line"), length
                              1..keyMaxLength bytes (default 256)
A record attribute "hive.ordered": [["a", "b"], ...] requires field a <= field b
(numbers; e.g. window_start <= window_end).

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


RULE_DEFAULTS = {"maxLength": 4096, "maxItems": 10000, "keyMaxLength": 256, "pattern": "text",
                 "keyPattern": "line"}
PATTERNS = ("any", "text", "line", "name")  # index = AVRO_PATTERN_* in common/avro_validate.h
TIMESTAMP_RANGE = (946684800000, 4102444800000)  # 2000-01-01 .. 2100-01-01, milliseconds
SCHEMA_VERSION_RANGE = (1, 1000)  # every record's schema_version, unless declared
FIELD_ATTRS = {"hive.range", "hive.finite", "hive.minLength", "hive.maxLength", "hive.pattern", "hive.maxItems",
               "hive.keyPattern", "hive.keyMaxLength"}
NUMBERS = ("int", "long", "float", "double")


def leaf_of(path, node, named, shape):
    """The leaf type of a field's type, through unions, arrays and maps; `shape`
    collects "array" / "map" for each container crossed."""
    if isinstance(node, list):
        branches = [b for b in node if b != "null"]
        if len(branches) != 1:
            fail(f"{path}: rules support unions of null and one type only")
        return leaf_of(path, branches[0], named, shape)
    if isinstance(node, str):
        if node in named:
            return leaf_of(path, named[node], named, shape)
        short = node.rsplit(".", 1)[-1]
        if short in named:
            return leaf_of(path, named[short], named, shape)
        return node, None
    kind = node.get("type")
    if kind == "array":
        shape.append("array")
        return leaf_of(path, node["items"], named, shape)
    if kind == "map":
        shape.append("map")
        return leaf_of(path, node["values"], named, shape)
    if kind in ("record", "enum", "fixed"):
        return kind, None
    if isinstance(kind, (dict, list)):
        return leaf_of(path, kind, named, shape)
    return kind, node.get("logicalType")


def num(path, what, x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        fail(f"{path}: {what} must be a number")
    return x


def field_rule(path, field, named):
    """(flags, min, max, min_len, max_len, max_items, pattern, key_pattern, key_max_len) of one field."""
    for key in field:
        if key.startswith("hive.") and key not in FIELD_ATTRS:
            fail(f"{path}: unknown attribute {key}")
    shape = []
    leaf, logical = leaf_of(path, field["type"], named, shape)
    attrs = {k[5:]: v for k, v in field.items() if k.startswith("hive.")}
    flags, lo, hi = [], 0, 0
    if "range" in attrs:
        r = attrs["range"]
        if leaf not in NUMBERS or not isinstance(r, list) or len(r) != 2:
            fail(f"{path}: hive.range is [lo, hi] on a number field")
        lo, hi = num(path, "hive.range", r[0]), num(path, "hive.range", r[1])
        if lo > hi:
            fail(f"{path}: hive.range [{lo}, {hi}] is empty")
        flags.append("AVRO_RULE_RANGE")
    elif leaf == "long" and logical == "timestamp-millis":
        lo, hi = TIMESTAMP_RANGE
        flags.append("AVRO_RULE_RANGE")
    if leaf == "long" and logical == "timestamp-millis":
        flags.append("AVRO_RULE_TIMESTAMP")
    if "finite" in attrs:
        if leaf not in ("float", "double") or not isinstance(attrs["finite"], bool):
            fail(f"{path}: hive.finite is true or false on a float or double field")
    if leaf in ("float", "double") and attrs.get("finite", True):
        flags.append("AVRO_RULE_FINITE")
    for key in ("minLength", "maxLength", "pattern"):
        if key in attrs and leaf != "string":
            fail(f"{path}: hive.{key} is for string fields")
    for key in ("keyPattern", "keyMaxLength"):
        if key in attrs and "map" not in shape:
            fail(f"{path}: hive.{key} is for map fields")
    if "maxItems" in attrs and not shape:
        fail(f"{path}: hive.maxItems is for array and map fields")
    ints = {}
    for key in ("minLength", "maxLength", "maxItems", "keyMaxLength"):
        x = attrs.get(key, RULE_DEFAULTS.get(key, 0))
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < 2**31:
            fail(f"{path}: hive.{key} must be an integer in 0..2^31-1")
        ints[key] = x
    if ints["minLength"] > ints["maxLength"]:
        fail(f"{path}: hive.minLength above hive.maxLength")
    default = field.get("default")
    if leaf == "string" and isinstance(default, str) and not ints["minLength"] <= len(default.encode()) <= ints["maxLength"]:
        fail(f"{path}: the default breaks the field's own hive.minLength / hive.maxLength")
    if field["name"] == "schema_version" and not flags:
        lo, hi = SCHEMA_VERSION_RANGE
        flags.append("AVRO_RULE_RANGE")
    pats = {}
    for key in ("pattern", "keyPattern"):
        x = attrs.get(key, RULE_DEFAULTS[key])
        if x not in PATTERNS:
            fail(f"{path}: hive.{key} must be one of {', '.join(PATTERNS)}")
        pats[key] = "AVRO_PATTERN_" + x.upper()
    return ("|".join(flags) or "0", lo, hi, ints["minLength"], ints["maxLength"], ints["maxItems"],
            pats["pattern"], pats["keyPattern"], ints["keyMaxLength"])


def collect_records(node, out):
    """Every record definition inside a schema, by name, in definition order."""
    if isinstance(node, list):
        for branch in node:
            collect_records(branch, out)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "record":
            out.setdefault(node["name"], node)
            for field in node.get("fields", []):
                collect_records(field.get("type"), out)
        elif kind == "array":
            collect_records(node.get("items"), out)
        elif kind == "map":
            collect_records(node.get("values"), out)
        elif kind == "enum":
            out.setdefault(node["name"], node)
        elif isinstance(kind, (dict, list)):
            collect_records(kind, out)


def c_double(x):
    return repr(float(x))


def write_rules(output, schemas):
    """The C table of avro_validate.h for the current schemas."""
    named = {}
    for path, schema in schemas:
        collect_records(schema, named)
    out = ["/* Generated by schemas/embed.py from the hive.* attributes of schemas/avro; do not edit. */",
           '#include "avro_validate.h"', ""]
    rows = []
    for i, (name, rec) in enumerate(n for n in named.items() if n[1].get("type") == "record"):
        path = f"record {name}"
        for key in rec:
            if key.startswith("hive.") and key != "hive.ordered":
                fail(f"{path}: unknown attribute {key}")
        fields = {f["name"]: f for f in rec["fields"]}
        out.append(f"static const avro_field_rule_t fields_{i}[] = {{")
        for f in rec["fields"]:
            r = field_rule(f"{path}, field {f['name']}", f, named)
            out.append(f'    {{"{f["name"]}", {r[0]}, {c_double(r[1])}, {c_double(r[2])}, {r[3]}, {r[4]}, {r[5]}, '
                       f'{r[6]}, {r[7]}, {r[8]}}},')
        out.append("};")
        order = rec.get("hive.ordered", [])
        if not isinstance(order, list):
            fail(f"{path}: hive.ordered is a list of [a, b] pairs")
        for pair in order:
            if not isinstance(pair, list) or len(pair) != 2 or any(p not in fields for p in pair):
                fail(f"{path}: hive.ordered pair {pair!r} must name two fields of the record")
            for p in pair:
                if leaf_of(path, fields[p]["type"], named, [])[0] not in NUMBERS or isinstance(fields[p]["type"], list):
                    fail(f"{path}: hive.ordered field {p} must be a plain number")
        if order:
            out.append(f"static const avro_order_rule_t order_{i}[] = {{")
            out.extend(f'    {{"{a}", "{b}"}},' for a, b in order)
            out.append("};")
        rows.append(f'    {{"{name}", fields_{i}, {len(rec["fields"])}, {f"order_{i}" if order else "NULL"}, '
                    f'{len(order)}}},')
    out.append("")
    out.append("const avro_record_rules_t hive_record_rules[] = {")
    out.extend(rows)
    out.append("};")
    out.append("const size_t hive_record_rules_count = sizeof(hive_record_rules) / sizeof(hive_record_rules[0]);")
    tmp = output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, output)


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
    ap.add_argument("--rules", help="also write the field rules table (common/avro_validate.h) here")
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
    current_schemas = []  # (path, parsed) of the current schemas, for the rules
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
            current_schemas.append((path, schema))
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
    if args.rules:
        write_rules(args.rules, current_schemas)


if __name__ == "__main__":
    main()
