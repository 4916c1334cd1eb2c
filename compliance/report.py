"""Print Autobahn's results per section and exit 1 unless every case passed.

A case passes when its behaviour (and its close behaviour) is OK, NON-STRICT
or INFORMATIONAL.

    python compliance/report.py REPORT_DIR/index.json ROLE
"""

from __future__ import annotations

import collections
import json
import sys

PASS = {"OK", "NON-STRICT", "INFORMATIONAL"}


def main(path: str, role: str) -> int:
    with open(path, encoding="utf-8") as file:
        index = json.load(file)
    failed: list[str] = []
    for agent, cases in sorted(index.items()):
        table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for case, result in cases.items():
            behaviour = result["behavior"]
            close = result.get("behaviorClose", "OK")
            verdict = behaviour if close in PASS else f"{behaviour}/close {close}"
            table[case.split(".")[0]][verdict] += 1
            if behaviour not in PASS or close not in PASS:
                failed.append(f"{case}: {behaviour} (close: {close})")
        print(f"Autobahn {role} - agent {agent}: {len(cases)} cases")
        print(f"  {'section':<8} {'cases':>5}  results")
        for section in sorted(table, key=int):
            counts = table[section]
            summary = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
            print(f"  {section:<8} {sum(counts.values()):>5}  {summary}")
        lenient = sorted((case for case, result in cases.items() if result["behavior"] == "NON-STRICT"),
                         key=lambda case: [int(part) for part in case.split(".")])
        if lenient:
            print(f"  NON-STRICT: {' '.join(lenient)}")
    for line in sorted(failed):
        print(f"  FAILED {line}")
    return 1 if failed or not index else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
