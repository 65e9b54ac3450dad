#!/usr/bin/env python3
"""Compare Autobahn reports with autobahn/expected-results.json.

    compare.py EXPECTED ROLE=INDEX_JSON [ROLE=INDEX_JSON ...]
    compare.py --write EXPECTED ROLE=INDEX_JSON [...]   # record the current results

ROLE is "server" or "client". For every case of the expected results, the behavior and the
close behavior of the report must be the same; a case missing from a report is a difference.
ROLE "axum" is the server role through the axum integration, "sync-server" and "sync-client"
the roles on the blocking API: each case they ran must have the expected results of the server
(axum, sync-server) or the client (sync-client); they may run fewer cases (the slow sections
are left out in CI).
Exits 1 on any difference. Standard library only.
"""
import json
import sys
from collections import Counter

FIELDS = ("behavior", "behaviorClose")
# The runs held to another role's expected results, case by case.
HELD_TO = {"axum": "server", "sync-server": "server", "sync-client": "client"}


def case_key(case_id):
    return tuple(int(part) for part in case_id.split("."))


def load_report(path):
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    if len(report) != 1:
        sys.exit(f"{path}: expected one agent, found {sorted(report)}")
    (cases,) = report.values()
    return {case: {field: result[field] for field in FIELDS} for case, result in cases.items()}


def summary(role, cases):
    counts = Counter(result["behavior"] for result in cases.values())
    text = " | ".join(f"{name} {counts[name]}" for name in sorted(counts))
    return f"{role}: {len(cases)} cases: {text}"


def main(argv):
    write = argv[:1] == ["--write"]
    if write:
        argv = argv[1:]
    if len(argv) < 2:
        sys.exit(__doc__)
    expected_path, reports = argv[0], argv[1:]
    actual = {}
    for spec in reports:
        role, _, path = spec.partition("=")
        if role not in ("server", "client", *HELD_TO) or not path:
            sys.exit(f"bad report argument {spec!r}: use server=, client=, axum=, sync-server= or sync-client=PATH")
        actual[role] = load_report(path)
    if write:
        # The other runs are held to a role's expectations, not recorded on their own.
        for role in HELD_TO:
            actual.pop(role, None)
        ordered = {
            role: {case: actual[role][case] for case in sorted(actual[role], key=case_key)}
            for role in sorted(actual)
        }
        with open(expected_path, "w", encoding="utf-8") as f:
            json.dump(ordered, f, indent=1)
            f.write("\n")
        for role in sorted(actual):
            print(summary(role, actual[role]))
        print(f"wrote {expected_path}")
        return 0
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    differences = 0
    for role, cases in actual.items():
        print(summary(role, cases))
        if role in HELD_TO:
            held_to = HELD_TO[role]
            if not cases:
                differences += 1
                print(f"  {role}: no case ran")
            for case in sorted(cases, key=case_key):
                want = expected.get(held_to, {}).get(case)
                if cases[case] != want:
                    differences += 1
                    print(f"  {role} {case}: expected the {held_to}'s {want}, got {cases[case]}")
            continue
        for case in sorted(expected.get(role, {}), key=case_key):
            want = expected[role][case]
            got = cases.get(case)
            if got != want:
                differences += 1
                print(f"  {role} {case}: expected {want}, got {got or 'nothing (missing)'}")
        for case in sorted(set(cases) - set(expected.get(role, {})), key=case_key):
            differences += 1
            print(f"  {role} {case}: not in the expected results: {cases[case]}")
    if differences:
        print(f"{differences} difference(s) from {expected_path}")
        return 1
    print(f"no difference from {expected_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
