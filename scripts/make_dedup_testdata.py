#!/usr/bin/env python3
"""Builds testdata/dedup/ from a folder of public-domain corpora (run once; output committed).

  python3 scripts/make_dedup_testdata.py --corpora DIR [--out testdata/dedup]

Standard library only (it borrows `shingles`/`similar_pairs` from bench_datasketch_dedup.py, which
import nothing outside the standard library at module level). Writes:

  milton.jsonl          every file of milton/ (sorted by name) as {"id": FILE, "text": CONTENT},
                        the content decoded from UTF-8 exactly as stored (CRLF and BOM kept)
  milton_pairs.json     {"identical": [[a, b], ...], "crlf_or_bom": [[a, b], ...]}: pairs of files
                        with byte-identical content, and pairs that are equal only once CRLF -> LF
                        and a leading UTF-8 BOM is dropped; plus "files" with each one's bytes,
                        CRLF count and BOM flag
  songci.jsonl          the whole Song ci corpus, ci.song.*.json (files in numeric order, 2019y
                        last) as {"id": "ci/<file index>/<n>", "text": rhythmic + "\\n" +
                        paragraphs joined by "\\n"}, then the 300 poems of 宋词三百首.json as
                        {"id": "300/<n>", ...} with the same text layout (no author, no prologue, so
                        copies of one poem match)
  songci_stats.json     how many docs; exact-text duplicate groups; how many of the 300 have an
                        exact-text match in the full set, how many only a near match (exact Jaccard of
                        char 5-gram sets >= 0.8 after dedup's normalisation), and the rest with their
                        closest poem; near pairs (Jaccard >= 0.8) over the whole file
  fortunes_zh.jsonl     zh-fortunes/chinese split on lines holding only "%" into
                        {"id": "chinese/<n>", "text": RECORD} with its ANSI escapes kept (the
                        record's lines joined by "\\n", without the newline before the "%")
  fortunes_zh_stats.json records; exact duplicate records as stored and after stripping ANSI escapes
"""
import argparse
import glob
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_datasketch_dedup import UnionFind, exact_jaccard, normalize, shingles, similar_pairs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
NEAR = 0.8


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(rows)} docs, {os.path.getsize(path)} bytes", file=sys.stderr)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


def dup_groups(keys):
    """Groups (lists of indices, in order) of equal keys with >= 2 members."""
    by = {}
    for i, k in enumerate(keys):
        by.setdefault(k, []).append(i)
    return [g for g in by.values() if len(g) > 1]


def milton(src, out):
    names = sorted(p.name for p in src.iterdir() if p.is_file())
    raw = {n: (src / n).read_bytes() for n in names}
    write_jsonl(out / "milton.jsonl", [{"id": n, "text": raw[n].decode("utf-8")} for n in names])
    canon = lambda b: (b[3:] if b.startswith(b"\xef\xbb\xbf") else b).replace(b"\r\n", b"\n")  # noqa: E731
    identical, crlf_or_bom = [], []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if raw[a] == raw[b]:
                identical.append([a, b])
            elif canon(raw[a]) == canon(raw[b]):
                crlf_or_bom.append([a, b])
    files = {n: {"bytes": len(raw[n]), "crlf": raw[n].count(b"\r\n"),
                 "bom": raw[n].startswith(b"\xef\xbb\xbf")} for n in names}
    write_json(out / "milton_pairs.json", {"identical": identical, "crlf_or_bom": crlf_or_bom, "files": files})
    return {"docs": len(names), "identical_pairs": len(identical), "crlf_or_bom_pairs": len(crlf_or_bom)}


def songci_text(poem):
    return poem["rhythmic"] + "\n" + "\n".join(poem["paragraphs"])


def songci(src, out):
    def key(path):
        idx = Path(path).name[len("ci.song."):-len(".json")]
        return (0, int(idx), idx) if idx.isdigit() else (1, 0, idx)

    rows = []
    for path in sorted(glob.glob(str(src / "ci.song.*.json")), key=key):
        idx = key(path)[2]
        with open(path, encoding="utf-8") as f:
            for n, poem in enumerate(json.load(f)):
                rows.append({"id": f"ci/{idx}/{n}", "text": songci_text(poem)})
    full = len(rows)
    with open(src / "宋词三百首.json", encoding="utf-8") as f:
        for n, poem in enumerate(json.load(f)):
            rows.append({"id": f"300/{n}", "text": songci_text(poem)})
    write_jsonl(out / "songci.jsonl", rows)

    texts = [r["text"] for r in rows]
    norm = [normalize(t) for t in texts]
    sets = [shingles(t, "char", 5) for t in texts]
    pairs = similar_pairs(sets, NEAR)
    near_full = {}  # doc of the 300 -> [(jaccard, doc of the full set)]
    for a, b, j in pairs:
        if a < full <= b:
            near_full.setdefault(b, []).append((j, a))
    exact_full = {}
    for i in range(full):
        exact_full.setdefault(texts[i], i)
    norm_full = {}
    for i in range(full):
        norm_full.setdefault(norm[i], i)
    s300 = {"exact_text_match": 0, "exact_after_normalisation_only": 0, "near_match_only": 0,
            "no_match": 0, "near_only_examples": [], "no_match_best": []}
    for i in range(full, len(rows)):
        in_full = near_full.get(i, [])
        if texts[i] in exact_full:
            s300["exact_text_match"] += 1
        elif norm[i] in norm_full:
            s300["exact_after_normalisation_only"] += 1
        elif in_full:
            s300["near_match_only"] += 1
            j, y = max(in_full)
            if len(s300["near_only_examples"]) < 10:
                s300["near_only_examples"].append([rows[i]["id"], rows[y]["id"], round(j, 4)])
        else:
            s300["no_match"] += 1
            j, y = max((exact_jaccard(sets[i], sets[y]), y) for y in range(full))
            s300["no_match_best"].append([rows[i]["id"], rows[y]["id"], round(j, 4)])
    uf = UnionFind(len(rows))
    for a, b, _ in pairs:
        uf.union(a, b)
    near_removed = sum(1 for i in range(len(rows)) if uf.find(i) != i)
    exact_groups = dup_groups(texts)
    stats = {
        "docs": len(rows), "full_set_docs": full, "songci300_docs": len(rows) - full,
        "bytes": os.path.getsize(out / "songci.jsonl"),
        "exact_text_duplicate_groups": len(exact_groups),
        "exact_text_duplicates": sum(len(g) - 1 for g in exact_groups),
        "exact_text_duplicate_groups_within_full_set": len(dup_groups(texts[:full])),
        "exact_text_duplicates_within_full_set": sum(len(g) - 1 for g in dup_groups(texts[:full])),
        "near_threshold": NEAR, "near_shingle": "char:5",
        "near_pairs": len(pairs),
        "near_pairs_not_exact_text": sum(1 for a, b, _ in pairs if texts[a] != texts[b]),
        "near_removed_keep_first": near_removed,
        "songci300_vs_full_set": s300,
    }
    write_json(out / "songci_stats.json", stats)
    return stats


def fortunes(src, out):
    data = (src / "chinese").read_bytes().decode("utf-8")
    records, cur = [], []
    for line in data.split("\n"):
        if line == "%":
            records.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    tail = "\n".join(cur)
    if tail.strip():
        records.append(tail)
    rows = [{"id": f"chinese/{n}", "text": r} for n, r in enumerate(records)]
    write_jsonl(out / "fortunes_zh.jsonl", rows)
    stripped = [ANSI.sub("", r) for r in records]
    g_raw, g_strip = dup_groups(records), dup_groups(stripped)
    sets = [shingles(r, "auto", 5) for r in stripped]
    pairs = similar_pairs(sets, NEAR)
    uf = UnionFind(len(records))
    for a, b, _ in pairs:
        uf.union(a, b)
    stats = {
        "records": len(records),
        "records_with_ansi": sum(1 for r in records if "\x1b[" in r),
        "empty_records": sum(1 for r in records if not r.strip()),
        "exact_duplicate_groups": len(g_raw),
        "exact_duplicates": sum(len(g) - 1 for g in g_raw),
        "exact_duplicate_groups_ansi_stripped": len(g_strip),
        "exact_duplicates_ansi_stripped": sum(len(g) - 1 for g in g_strip),
        "largest_groups_ansi_stripped": [[rows[i]["id"] for i in g]
                                         for g in sorted(g_strip, key=len, reverse=True)[:5]],
        "near_threshold": NEAR, "near_shingle": "auto (ANSI stripped)",
        "near_pairs": len(pairs),
        "near_removed_keep_first": sum(1 for i in range(len(records)) if uf.find(i) != i),
    }
    write_json(out / "fortunes_zh_stats.json", stats)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", required=True, help="folder holding milton/ and the other corpora")
    ap.add_argument("--out", default=str(ROOT / "testdata" / "dedup"))
    a = ap.parse_args()
    src, out = Path(a.corpora), Path(a.out)
    if not (src / "milton").is_dir():
        sys.exit(f"make_dedup_testdata: {src}/milton not found (pass --corpora)")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"milton": milton(src / "milton", out),
               "songci": songci(src / "zh-songci", out),
               "fortunes_zh": fortunes(src / "zh-fortunes", out)}
    s = summary["songci"]
    summary["songci"] = {k: s[k] for k in ("docs", "bytes", "exact_text_duplicates", "near_pairs",
                                           "near_removed_keep_first", "songci300_vs_full_set")}
    summary["songci"]["songci300_vs_full_set"] = {k: v for k, v in s["songci300_vs_full_set"].items()
                                                  if k != "near_only_examples"}
    print(json.dumps(summary, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
