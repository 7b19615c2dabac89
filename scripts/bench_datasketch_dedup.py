#!/usr/bin/env python3
"""Python peer for the `dedup` benchmark: datasketch MinHash + MinHashLSH near-duplicate removal.

  .venv/bin/python scripts/bench_datasketch_dedup.py CORPUS [--field text] [--bands 14 --rows 8]
      [--shingle auto|word:N|char:N] [--seed 1] [--verify [--verify-threshold 0.8]]
      [--pairs-out PAIRS.tsv] [--removed-out REMOVED.jsonl]

Same normalisation and shingles as wick `dedup` (see `normalize` and `shingles` below):
NFKC, then lowercase, then every run of Unicode White_Space (Rust's char::is_whitespace) becomes
one space; word shingles are the word n-grams joined by one space, char shingles are n consecutive
code points of the text with the whitespace removed; a document with fewer than n tokens yields one
shingle, the whole token sequence; an empty one yields none. `auto` picks char shingles when CJK
characters (Han, kana, bopomofo, Hangul) outnumber the other letters, word shingles otherwise, per
document (wick's mostly_cjk; Python's isalpha stands in for Rust's is_alphabetic).

Each document gets a datasketch MinHash(num_perm=bands*rows, seed) built the way the documented
fast path MinHash.generator does it (copy of one initialised MinHash, update_batch over the UTF-8
shingles; default SHA-1 32-bit hash, datasketch 2.x "affine32" permutations), and goes through one
MinHashLSH(num_perm, params=(bands, rows)): query first (candidates are earlier documents sharing a
band), then insert. Shingle sets are not kept (except with --verify). Candidate
pairs are joined with union-find; each cluster keeps its first document (input order), every other
member is removed with dup_of = the kept document. With --verify a candidate pair is only joined
when the exact Jaccard of the two shingle sets is >= --verify-threshold.

Prints one JSON line on stdout:
  docs, candidate_pairs, removed, clusters (clusters with >= 2 documents)
  seconds      normalise + shingle + MinHash + LSH + union-find  <- the headline number
               (excludes reading and parsing the JSONL, and writing anything)
  docs_per_s   docs / seconds
  shingle_seconds, minhash_seconds, lsh_seconds   the parts of `seconds` (lsh = query + insert +
               union-find)
  read_seconds reading + JSON parsing (not in `seconds`)
This favours Python: wick's wall time also covers reading, parsing and writing the kept documents.

--pairs-out FILE   every candidate pair, one per line: EARLIER_ID <TAB> LATER_ID <TAB> estimated
                   Jaccard (MinHash) <TAB> joined (1/0; always 1 without --verify)
--removed-out FILE one JSON line per removed document: {"id", "dup_of", "similarity"} (estimated
                   Jaccard between the document and its kept dup_of), the shape of wick's --removed
                   records less the document's other fields
Ids are the document's "id" field when it is a string or number, else "<file>:<line>" (1-based).

Helper modes for scripts/bench_dedup.sh (same file so that they share the shingling code):
  bench_datasketch_dedup.py make-bench-corpus SRC.jsonl OUT.jsonl [--copies 2]
      SRC plus --copies edited copies of every document (deterministic character substitutions,
      0-20 per document, so the copies span Jaccard ~0.2-1.0 against their original)
  bench_datasketch_dedup.py make-memory-corpus OUT.jsonl [--docs 1000000] SRC.jsonl...
      --docs short documents made of the distinct lines of the SRC texts (cycled), each made unique
      with its own 5-character counter token after every 3 words (every 3 characters in CJK lines),
      so that no shingle is shared with another document's and none is a near duplicate
  bench_datasketch_dedup.py quality CORPUS --shingle S [--threshold 0.8] NAME=REMOVED.jsonl...
      exact all-pairs Jaccard (prefix-filtered set-similarity join) as the truth, then each tool's
      precision and recall; prints one JSON line
"""
import argparse
import json
import math
import os
import random
import re
import sys
import time
import unicodedata

# Rust's char::is_whitespace (Unicode White_Space). Python's str.split()/isspace() also count
# U+001C..U+001F, which Rust does not, so the set is spelled out.
_WS = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# Han, kana, bopomofo, Hangul syllables (wick dedup's shingle::is_cjk)
_CJK = re.compile("[\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
                  "\uf900-\ufaff\U00020000-\U0002fa1f]")


def normalize(text):
    """NFKC, lowercase, every whitespace run -> one space, no leading/trailing space."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip(" ")


def parse_shingle(spec):
    if spec == "auto":
        return ("auto", 5)
    m = re.fullmatch(r"(word|char):([1-9][0-9]*)", spec)
    if not m:
        raise argparse.ArgumentTypeError(f"--shingle must be auto, word:N or char:N, got {spec!r}")
    return (m.group(1), int(m.group(2)))


def is_cjk(norm):
    """auto's rule (wick dedup's mostly_cjk): more CJK characters than other letters."""
    cjk = len(_CJK.findall(norm))
    return cjk > sum(1 for c in norm if c.isalpha()) - cjk


def shingles(text, kind="auto", n=5):
    """The set of shingles (str) of one document."""
    t = normalize(text)
    if kind == "auto":
        kind = "char" if is_cjk(t) else "word"
    if kind == "word":
        toks, sep = (t.split(" ") if t else []), " "
    else:
        toks, sep = t.replace(" ", ""), ""
    if not toks:
        return set()
    if len(toks) < n:
        return {sep.join(toks)}
    return {sep.join(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def doc_id(obj, path, lineno):
    v = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return json.dumps(v)
    return f"{path}:{lineno}"


def read_corpus(path, field="text"):
    """[(id, text)] of the non-blank lines of a JSONL file."""
    docs = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            text = obj.get(field)
            if not isinstance(text, str):
                sys.exit(f"{path}:{lineno}: no string field {field!r}")
            docs.append((doc_id(obj, path, lineno), text))
    return docs


class UnionFind:
    """Union by smallest index, so every root is its cluster's first document."""

    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


def exact_jaccard(a, b):
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if (a or b) else 1.0


# --- the peer --------------------------------------------------------------------------------------

def run_peer(args):
    from datasketch import MinHash, MinHashLSH, __version__ as ds_version  # noqa: F401

    kind, n = args.shingle
    num_perm = args.bands * args.rows
    t_read = time.perf_counter()
    docs = read_corpus(args.corpus, args.field)
    read_s = time.perf_counter() - t_read

    t0 = time.perf_counter()
    lsh = MinHashLSH(num_perm=num_perm, params=(args.bands, args.rows))
    base = MinHash(num_perm=num_perm, seed=args.seed)  # what MinHash.generator does: copy + update_batch
    pairs = []  # (earlier, later)
    hashvalues = []
    sets = [] if args.verify else None  # shingle sets are kept only for --verify
    shingle_s = minhash_s = 0.0
    for i, (_, text) in enumerate(docs):
        ta = time.perf_counter()
        sh = shingles(text, kind, n)
        if sets is not None:
            sets.append(sh)
        encoded = [s.encode("utf-8") for s in sh]
        tb = time.perf_counter()
        m = base.copy()
        m.update_batch(encoded)
        tc = time.perf_counter()
        shingle_s += tb - ta
        minhash_s += tc - tb
        for c in lsh.query(m):
            pairs.append((c, i))
        lsh.insert(i, m, check_duplication=False)
        hashvalues.append(m.hashvalues)
    uf = UnionFind(len(docs))
    joined = []
    for a, b in pairs:
        ok = (not args.verify) or exact_jaccard(sets[a], sets[b]) >= args.verify_threshold
        joined.append(ok)
        if ok:
            uf.union(a, b)
    roots = [uf.find(i) for i in range(len(docs))]
    t2 = time.perf_counter()

    seconds = t2 - t0
    removed = [i for i in range(len(docs)) if roots[i] != i]
    clusters = len({roots[i] for i in removed})
    est = lambda a, b: float((hashvalues[a] == hashvalues[b]).mean())  # noqa: E731
    if args.pairs_out:
        with open(args.pairs_out, "w", encoding="utf-8") as f:
            for (a, b), ok in sorted(zip(pairs, joined)):
                f.write(f"{docs[a][0]}\t{docs[b][0]}\t{est(a, b):.4f}\t{int(ok)}\n")
    if args.removed_out:
        with open(args.removed_out, "w", encoding="utf-8") as f:
            for i in removed:
                rec = {"id": docs[i][0], "dup_of": docs[roots[i]][0], "similarity": round(est(i, roots[i]), 4)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(json.dumps({
        "tool": f"datasketch {ds_version}",
        "corpus": args.corpus,
        "shingle": "auto" if kind == "auto" else f"{kind}:{n}",
        "bands": args.bands, "rows": args.rows, "verify": args.verify,
        "docs": len(docs),
        "candidate_pairs": len(pairs),
        "removed": len(removed),
        "clusters": clusters,
        "seconds": round(seconds, 4),
        "docs_per_s": round(len(docs) / seconds, 1) if seconds > 0 else None,
        "shingle_seconds": round(shingle_s, 4),
        "minhash_seconds": round(minhash_s, 4),
        "lsh_seconds": round(seconds - shingle_s - minhash_s, 4),
        "read_seconds": round(read_s, 4),
    }))


# --- exact truth: all pairs with Jaccard >= t ----------------------------------------------------

def similar_pairs(sets, threshold):
    """All (i, j, jaccard), i < j, with exact Jaccard(sets[i], sets[j]) >= threshold > 0.

    AllPairs-style prefix filtering: tokens ordered rarest first; if J(x, y) >= t then the two
    sets share a token among the first |x| - ceil(t*|x|) + 1 tokens of x (and likewise of y).
    Documents are processed by increasing size, each probing the prefixes indexed so far (with the
    size filter |y| >= t*|x|) and then indexing its own prefix; candidates are verified exactly.
    Exact, not an estimate."""
    assert 0 < threshold <= 1
    df = {}
    for s in sets:
        for tok in s:
            df[tok] = df.get(tok, 0) + 1
    order = {tok: k for k, tok in enumerate(sorted(df, key=lambda tok: (df[tok], tok)))}
    del df
    ranked = [sorted(order[tok] for tok in s) for s in sets]
    del order
    index = {}  # token rank -> [doc]
    out = []
    for x in sorted(range(len(sets)), key=lambda i: (len(ranked[i]), i)):
        rx = ranked[x]
        size = len(rx)
        prefix = size - math.ceil(threshold * size - 1e-9) + 1
        min_size = threshold * size - 1e-9
        seen = set()
        for tok in rx[:prefix]:
            for y in index.get(tok, ()):
                if y not in seen:
                    seen.add(y)
        if seen:
            sx = sets[x]
            for y in seen:
                if len(sets[y]) < min_size:
                    continue
                j = exact_jaccard(sx, sets[y])
                if j >= threshold - 1e-12:
                    out.append((min(x, y), max(x, y), j))
        for tok in rx[:prefix]:
            index.setdefault(tok, []).append(x)
    out.sort()
    return out


def truth_removed(n, pairs):
    """Docs that an ideal keep-first clustering over `pairs` removes (not first of component)."""
    uf = UnionFind(n)
    for a, b, _ in pairs:
        uf.union(a, b)
    return {i for i in range(n) if uf.find(i) != i}


def run_quality(argv):
    ap = argparse.ArgumentParser(prog="bench_datasketch_dedup.py quality")
    ap.add_argument("corpus")
    ap.add_argument("tools", nargs="+", metavar="NAME=REMOVED.jsonl",
                    help="a tool's removed documents: JSONL with \"id\" and \"dup_of\"")
    ap.add_argument("--field", default="text")
    ap.add_argument("--shingle", type=parse_shingle, default=("auto", 5))
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--truth-out", help="write the truth pairs (ID <TAB> ID <TAB> Jaccard) here")
    a = ap.parse_args(argv)
    kind, n = a.shingle
    docs = read_corpus(a.corpus, a.field)
    index_of = {}
    for i, (d, _) in enumerate(docs):
        if d in index_of:
            sys.exit(f"quality: duplicate id {d!r} in {a.corpus}")
        index_of[d] = i
    sets = [shingles(text, kind, n) for _, text in docs]
    t0 = time.perf_counter()
    pairs = similar_pairs(sets, a.threshold)
    truth_s = time.perf_counter() - t0
    truth = truth_removed(len(docs), pairs)
    neighbours = set()
    for x, y, _ in pairs:
        neighbours.add(x)
        neighbours.add(y)
    if a.truth_out:
        with open(a.truth_out, "w", encoding="utf-8") as f:
            for x, y, j in pairs:
                f.write(f"{docs[x][0]}\t{docs[y][0]}\t{j:.4f}\n")
    result = {"corpus": a.corpus, "docs": len(docs), "threshold": a.threshold,
              "shingle": "auto" if kind == "auto" else f"{kind}:{n}",
              "truth_pairs": len(pairs), "truth_removed": len(truth),
              "truth_seconds": round(truth_s, 2), "tools": {}}
    for spec in a.tools:
        name, _, path = spec.partition("=")
        removed, dup_ok, unknown = set(), 0, 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                i, k = index_of.get(str(rec.get("id"))), index_of.get(str(rec.get("dup_of")))
                if i is None or k is None:
                    unknown += 1
                    continue
                removed.add(i)
                if exact_jaccard(sets[i], sets[k]) >= a.threshold - 1e-12:
                    dup_ok += 1
        hit = len(removed & truth)
        result["tools"][name] = {
            "removed": len(removed),
            "precision": round(hit / len(removed), 4) if removed else None,
            "recall": round(hit / len(truth), 4) if truth else None,
            # removed documents whose own dup_of is within the threshold (chains lower this)
            "dup_of_precision": round(dup_ok / len(removed), 4) if removed else None,
            # removed documents with at least one document within the threshold anywhere
            "has_true_neighbour": round(len(removed & neighbours) / len(removed), 4) if removed else None,
            "unknown_ids": unknown,
        }
    print(json.dumps(result))


# --- corpora for the benchmark --------------------------------------------------------------------

# Common Han characters used as substitutes in the edited copies.
_SUBST = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
          "对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面"
          "公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部"
          "正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关")
_EDITS = (0, 1, 1, 2, 3, 4, 5, 6, 8, 10, 12, 20)


def edit_text(text, rng, edits):
    chars = list(text)
    spots = [k for k, c in enumerate(chars) if not c.isspace()]
    for _ in range(min(edits, len(spots))):
        k = rng.choice(spots)
        chars[k] = rng.choice(_SUBST)
    return "".join(chars)


def run_make_bench_corpus(argv):
    ap = argparse.ArgumentParser(prog="bench_datasketch_dedup.py make-bench-corpus")
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--copies", type=int, default=2)
    a = ap.parse_args(argv)
    docs = read_corpus(a.src)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for copy in range(a.copies + 1):
            for i, (d, text) in enumerate(docs):
                if copy:
                    rng = random.Random(f"{copy}:{i}")
                    e = _EDITS[rng.randrange(len(_EDITS))]
                    d, text = f"{d}~{copy}e{e}", edit_text(text, rng, e)
                f.write(json.dumps({"id": d, "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, a.out)
    print(f"make-bench-corpus: {a.out}: {len(docs) * (a.copies + 1)} docs", file=sys.stderr)


def _b36(k, width=4):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    for _ in range(width):
        k, r = divmod(k, 36)
        s = digits[r] + s
    return s


def run_make_memory_corpus(argv):
    ap = argparse.ArgumentParser(prog="bench_datasketch_dedup.py make-memory-corpus")
    ap.add_argument("out")
    ap.add_argument("srcs", nargs="+")
    ap.add_argument("--docs", type=int, default=1_000_000)
    a = ap.parse_args(argv)
    if a.docs > 36 ** 4:
        sys.exit("make-memory-corpus: at most 36^4 documents")
    lines, seen = [], set()
    for src in a.srcs:
        for _, text in read_corpus(src):
            for line in text.splitlines():
                line = _WS.sub(" ", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line)).strip()
                if len(line) >= 12 and line not in seen:
                    seen.add(line)
                    lines.append(line)
    if not lines:
        sys.exit("make-memory-corpus: no lines in the sources")
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        # A line's tokens: its words, or for a CJK line (char shingles) its characters less the
        # spaces. A unique 5-character tag after every 3 tokens puts a part of the tag into every
        # word 5-gram and every char 5-gram, whichever `auto` picks for the tagged text.
        split = [(list(line.replace(" ", "")), "") if is_cjk(normalize(line)) else (line.split(" "), " ")
                 for line in lines]
        for k in range(a.docs):
            toks, sep = split[k % len(lines)]
            tag = "z" + _b36(k)  # 5 characters, unique per document
            parts = []
            for p in range(0, len(toks), 3):
                parts.append(sep.join(toks[p:p + 3]))
                parts.append(tag)
            f.write(json.dumps({"id": f"m{k}", "text": " ".join(parts)}, ensure_ascii=False) + "\n")
    os.replace(tmp, a.out)
    print(f"make-memory-corpus: {a.out}: {a.docs} docs from {len(lines)} distinct lines", file=sys.stderr)


def main():
    helpers = {"quality": run_quality, "make-bench-corpus": run_make_bench_corpus,
               "make-memory-corpus": run_make_memory_corpus}
    if len(sys.argv) > 1 and sys.argv[1] in helpers:
        return helpers[sys.argv[1]](sys.argv[2:])
    ap = argparse.ArgumentParser(description="datasketch MinHash-LSH near-dedup peer (see the module doc)")
    ap.add_argument("corpus", help="JSONL file")
    ap.add_argument("--field", default="text")
    ap.add_argument("--bands", type=int, default=14)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--shingle", type=parse_shingle, default=("auto", 5))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verify", action="store_true", help="join a candidate pair only if its exact Jaccard >= --verify-threshold")
    ap.add_argument("--verify-threshold", type=float, default=0.8)
    ap.add_argument("--pairs-out")
    ap.add_argument("--removed-out")
    run_peer(ap.parse_args())


if __name__ == "__main__":
    main()
