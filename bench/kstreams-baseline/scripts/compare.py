#!/usr/bin/env python3
"""Compares two output topics dumped by DumpTopic (JSON lines), version by version per key.

  compare.py A.dump B.dump [--expected cdc-gen-expected.jsonl]

Values are compared as parsed JSON (field order ignored, array order kept), tombstones as
null. With --expected, A's versions are also checked against cdc-gen's expected aggregates
(which carry no version or source_tx fields: those are ignored for that check, the tx id is
compared with source_tx.id). Exit status 0 when everything matched.
"""
import argparse
import collections
import json
import sys


def load(path):
    versions = collections.defaultdict(list)
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        v = r["value"]
        versions[r["key"]].append((r["partition"], r["offset"], None if v is None else json.loads(v)))
    for key in versions:
        versions[key].sort(key=lambda t: (t[0], t[1]))
        versions[key] = [t[2] for t in versions[key]]
    return versions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--expected")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    keys = sorted(set(a) | set(b), key=lambda k: (len(k), k))
    same_final = diff_final = same_all = diff_all = 0
    shown = 0
    for k in keys:
        va, vb = a.get(k, []), b.get(k, [])
        if va and vb and va[-1] == vb[-1]:
            same_final += 1
        else:
            diff_final += 1
        if va == vb:
            same_all += 1
        else:
            diff_all += 1
            if shown < 3:
                shown += 1
                for i, (x, y) in enumerate(zip(va + [None] * len(vb), vb + [None] * len(va))):
                    if x != y:
                        print(f"key {k}: {len(va)} vs {len(vb)} versions; first difference at #{i + 1}:"
                              f"\n  A: {json.dumps(x)[:400]}\n  B: {json.dumps(y)[:400]}")
                        break
    total_a = sum(len(v) for v in a.values())
    total_b = sum(len(v) for v in b.values())
    print(f"records: A {total_a}, B {total_b}; keys: {len(keys)}")
    print(f"final aggregate per key: {same_final} equal, {diff_final} different")
    print(f"every version per key (incl. version, source_tx, tombstones): {same_all} equal, {diff_all} different")
    ok = diff_final == 0 and diff_all == 0
    if args.expected:
        exp = collections.defaultdict(list)
        for line in open(args.expected, encoding="utf-8"):
            r = json.loads(line)
            exp[str(r["root"])].append((r["tx"], r.get("aggregate")))
        eq = ne = 0
        for k in set(exp) | set(a):
            got = [(None if v is None else v.get("source_tx", {}).get("id"),
                    None if v is None else {f: x for f, x in v.items() if f not in ("source_tx", "version")})
                   for v in a.get(k, [])]
            want = [(tx if agg is not None else None, agg) for tx, agg in exp.get(k, [])]
            if got == want:
                eq += 1
            else:
                ne += 1
        print(f"A against cdc-gen's expected versions: {eq} keys equal, {ne} different")
        ok = ok and ne == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
