"""fastavro and the C codec agree byte for byte on every record (no stack needed).

Python writes one example of each record with fastavro; the C unit test binary
test_avro (with HIVE_AVRO_INTEROP_DIR) decodes each, re-encodes it and must produce
the same bytes, and writes its own examples, which fastavro decodes and re-encodes
to the same bytes. The build directory is $HIVE_BUILD_DIR, else build-asan or build.
"""
import os
import subprocess

import pytest

import hive_avro

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RECORDS = list(hive_avro._schemas()[0])


def c_test_binary():
    for d in (os.environ.get("HIVE_BUILD_DIR"), "build-asan", "build"):
        if d:
            path = os.path.join(ROOT, d, "tests", "unit", "test_avro")
            if os.path.exists(path):
                return path
    pytest.skip("no build with tests/unit/test_avro")


def example(schema, name="x", seed=0, named=None):
    """A value of `schema` (parsed by fastavro) with every field set, nulls avoided."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return example([b for b in schema if b != "null"][-1], name, seed, named)
    if isinstance(schema, dict):
        t = schema["type"]
        if t in ("record", "enum"):
            named[schema["name"]] = schema
        if t == "record":
            return {f["name"]: example(f["type"], f["name"], seed + i, named) for i, f in enumerate(schema["fields"])}
        if t == "enum":
            return schema["symbols"][seed % len(schema["symbols"])]
        if t == "array":
            return [example(schema["items"], name, seed + i, named) for i in range(3)]
        if t == "map":
            return {f"{name}-k{i}": example(schema["values"], name, seed + i, named) for i in range(2)}
        return example(t, name, seed, named)
    if schema in named:
        return example(named[schema], name, seed, named)
    return {
        "string": f"{name}-{seed}-çã€",
        "int": 1 if name == "schema_version" else -7 - seed,
        "long": 1_700_000_000_000 + seed,
        "double": -0.1 * (seed + 1),
        "float": 0.5,
        "boolean": seed % 2 == 0,
        "bytes": b"\x00\xff",
    }[schema]


def test_fastavro_and_c_codec_agree(tmp_path):
    binary = c_test_binary()
    sent = {}
    for name in RECORDS:
        rec = example(hive_avro.schema(name))
        data = hive_avro.encode(name, rec)
        assert hive_avro.decode(name, data) == rec
        (tmp_path / f"{name}.py.bin").write_bytes(data)
        sent[name] = data

    env = dict(os.environ, HIVE_AVRO_INTEROP_DIR=str(tmp_path), CMOCKA_MESSAGE_OUTPUT="stdout")
    run = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_interop_files" in run.stdout and "SKIPPED" not in run.stdout.split("test_interop_files")[1][:40]

    for name in RECORDS:
        data = (tmp_path / f"{name}.c.bin").read_bytes()
        assert data[:5] == b"\x00" + hive_avro.schema_id(name).to_bytes(4, "big")
        rec = hive_avro.decode(name, data)
        assert hive_avro.encode(name, rec) == data, name
    # The C examples hold what the C filler put there (a string per field, UTF-8 intact).
    tel = hive_avro.decode("TelemetryAggregated", (tmp_path / "TelemetryAggregated.c.bin").read_bytes())
    assert tel["service"] == "service-1-ação"
    assert tel["schema_version"] == 1
    assert tel["variant"] == "variant-12-ação"
    assert tel["metrics"] == {"k0": 0.125 * 15 + 1e-9, "k1": 0.125 * 16 + 1e-9}


def test_payload_hash_matches_the_definition():
    rec = example(hive_avro.schema("OptimizationEvent"))
    h = hive_avro.payload_hash("OptimizationEvent", rec)
    assert len(h) == 64 and h == hive_avro.payload_hash("OptimizationEvent", dict(rec, hash=h))
    assert h != hive_avro.payload_hash("OptimizationEvent", dict(rec, revision=rec["revision"] + 1))


def test_decode_reasons():
    good = hive_avro.encode("Insight", example(hive_avro.schema("Insight")))
    for data, reason in [
        (b"{}", "too short"),
        (b"\x07" + good[1:], "bad magic byte 0x07"),
        (b"\x00\x00\x00\x00\x4d\x02", "unknown schema id 77"),
        (good, "expected TelemetryAggregated, got Insight"),
        (good + b"x", "1 bytes of trailing garbage"),
    ]:
        with pytest.raises(ValueError, match=reason):
            hive_avro.decode("TelemetryAggregated" if reason.startswith("expected") else "Insight", data)
