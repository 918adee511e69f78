#!/usr/bin/env python3
"""Adds up test results: meson's testlog JSON files and pytest's JUnit XML.

Prints one line per suite, the failures by name, and last the line
"N passed, N failed" over all suites. Exits 1 when anything failed, or when a
suite that was expected left no result file or ran no test.
"""
import json
import sys
import xml.etree.ElementTree as ET


def meson_results(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                out.append((r["name"], r["result"]))
    return out


def junit_results(path):
    out = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f'{case.get("classname")}::{case.get("name")}'
        if case.find("failure") is not None or case.find("error") is not None:
            out.append((name, "FAIL"))
        elif case.find("skipped") is not None:
            out.append((name, "SKIP"))
        else:
            out.append((name, "OK"))
    return out


def main(argv):
    passed = failed = skipped = 0
    missing = False
    for spec in argv[1:]:
        label, _, path = spec.partition("=")
        try:
            results = junit_results(path) if path.endswith(".xml") else meson_results(path)
        except (OSError, ValueError, ET.ParseError) as e:
            print(f"{label}: no results ({e})")
            missing = True
            continue
        if not results:
            print(f"{label}: ran no test")
            missing = True
            continue
        p = sum(1 for _, r in results if r in ("OK", "EXPECTEDFAIL"))
        s = sum(1 for _, r in results if r == "SKIP")
        bad = [(n, r) for n, r in results if r not in ("OK", "EXPECTEDFAIL", "SKIP")]
        print(f"{label}: {p} passed, {len(bad)} failed, {s} skipped")
        for n, r in bad:
            print(f"  {r}: {n}")
        passed, failed, skipped = passed + p, failed + len(bad), skipped + s
    if missing:
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
