#!/usr/bin/env python3
"""Writes testdata/eval/: reference values for `wick eval` from the Python packages it must match.

Run once from the repository root; its output is committed and the Rust tests need no Python:

  .venv/bin/python scripts/gen_eval_fixtures.py

Run with sacrebleu 2.6.0, rouge-score 0.1.2, scikit-learn 1.9.1, nltk 3.10.4 (no network, no nltk
data). Deterministic: no randomness except random.Random(SEED) with fixed seeds.

Inputs (all already in the repository):
  testdata/raw/shakespeare/hamlet_gut.txt, hamlet_gut_f.txt   Hamlet, modern and First Folio spelling
  testdata/english.jsonl                                      Shakespeare plays by scene, the Sonnets
  testdata/dedup/songci.jsonl                                 Song ci ("ci/..." full set, "300/<n>")
  testdata/dedup/milton.jsonl                                 Milton (out-of-domain class for cls)

Outputs (JSONL, one record a line, UTF-8, ensure_ascii=False):

  gen_en.jsonl     {"id", "response", "reference"}: Hamlet First Folio line (response) vs the aligned
                   modern-spelling line (reference), ids "hamlet/<folio line>~<modern line>" (0-based
                   indices into the filtered speech-line lists), then hand-made tokenisation edge
                   cases, ids "edge/<nn>"
  gen_zh.jsonl     {"id", "response", "reference"}: for each of the 90 "300/<n>" poems that have only a
                   near copy in the "ci/..." set: the whole poem (lines joined without separator, no
                   title) as "300/<n>~<ci id>", then line pairs "300/<n>~<ci id>:<line>" (line index in
                   the text, 0 = title, not used). Response = the 300 anthology's text, reference = the
                   nearest ci variant (char 5-gram Jaccard). All differing lines, plus evenly spaced
                   identical lines to make 300 records.
  gen_multi.jsonl  {"id", "response", "references": [modern line, Folio line with u/v regularised]}
                   for 50 aligned Hamlet pairs not used in gen_en (and whose u/v regularisation changes
                   the line). Regularisation: word-initial v before a consonant -> u ("vpon" -> "upon"),
                   u between a vowel and a vowel -> v ("giue" -> "give"), case kept.
  qa_en.jsonl      {"id", "prediction", "answers": [...]}: noun-phrase-like spans of modern Shakespeare
                   lines (1-3 answers: the span, without its determiner, with its punctuation / other
                   case) and a perturbed prediction; then hand-made edge cases "edge/<nn>"
  qa_zh.jsonl      the same for Song ci clauses (宋词三百首); then hand-made edge cases
  cls.jsonl        {"id", "prediction", "reference"}: which work a ~180-word chunk of english.jsonl comes
                   from (hamlet, hamlet_folio, macbeth, midsummer, sonnets, tempest), predicted by a
                   nearest-centroid classifier (cosine on lowercased word counts, centroids from the
                   even-numbered chunks of each work, tested on the odd ones) that answers "unknown"
                   when the best cosine is < 0.55; plus 24 chunks of Milton's Paradise Regained with
                   reference "milton" (no centroid, so never predicted; "unknown" is never a reference)

gen_expected.json (key paths; <set> is gen_en, gen_zh or gen_multi):
  versions.{sacrebleu, rouge_score, sklearn, nltk, python}
  <set>.file, <set>.n, <set>.tokenize ("13a", "zh", "13a")
  <set>.corpus.bleu.{score, counts[4], totals[4], precisions[4], bp, ratio, sys_len, ref_len, signature}
        sacrebleu.metrics.BLEU(tokenize=T).corpus_score(hyps, ref_streams); ratio = sys_len / ref_len
        (gen_multi: ref_streams = [[r[0] ...], [r[1] ...]])
  <set>.corpus.chrf.{score, signature}      CHRF() (char_order 6, word_order 0, beta 2)
  <set>.corpus.chrf_pp.{score, signature}   CHRF(word_order=2)
  <set>.corpus.rouge_mean_fmeasure.<variant>.{rouge1, rouge2, rougeL}   arithmetic mean over records
  <set>.rouge_variants.<variant>.{use_stemmer, tokenizer}
        variants: "default" (use_stemmer False), "stemmer" (use_stemmer True); gen_zh also "char": a
        tokenizer object whose tokenize(text) returns [c for c in text if not c.isspace()] (rouge-score
        ignores use_stemmer when a tokenizer is given). The default tokenizer drops CJK entirely, so
        gen_zh's default/stemmer scores are all 0. gen_multi uses RougeScorer.score_multi(targets,
        prediction) (per rouge type the Score of the target with the highest fmeasure, first on ties).
  <set>.sentence_bleu_signature
  <set>.records[i].{id, bleu, chrf, chrf_pp, rouge.<variant>.<rouge type> = [precision, recall, fmeasure]}
        for every record, in file order: bleu = BLEU(tokenize=T, effective_order=True).sentence_score(
        hyp, refs).score, chrf / chrf_pp = CHRF() / CHRF(word_order=2) .sentence_score(hyp, refs).score;
        rouge = RougeScorer(["rouge1", "rouge2", "rougeL"], ...).score(target=reference,
        prediction=response)

qa_expected.json:
  versions.{...}
  qa_en.{file, n, method, exact_match, f1, records[i].{id, em, f1}}
        SQuAD v1.1 evaluate-v1.1.py: em in {0, 1}, f1 float; exact_match = 100 * sum(em) / n,
        f1 = 100 * sum(f1) / n (max over answers per record)
  qa_zh.{file, n, method, exact_match, f1, records[i].{id, em, f1}, nltk_preserve_line.{f1, differs}}
        CMRC 2018 cmrc2018_evaluate.py logic with the segmentation variant described at
        mixed_segmentation() below; nltk_preserve_line gives the mean F1 (x100) had the non-CJK runs
        been split by nltk.word_tokenize(run, preserve_line=True) instead, and differs lists
        {id, f1} of the records where that changes the F1 (informative only)

cls_expected.json:
  versions.{...}, file, n
  labels                      sorted(set(prediction) | set(reference)) (Python str order)
  accuracy                    accuracy_score(ref, pred)
  per_label.{precision, recall, f1, support}   lists aligned with labels:
                              precision_recall_fscore_support(ref, pred, average=None, labels=labels,
                              zero_division=0)
  macro|micro|weighted.{precision, recall, f1}   precision_score / recall_score / f1_score(ref, pred,
                              labels=labels, average=..., zero_division=0)
  confusion_matrix            confusion_matrix(ref, pred, labels=labels): rows reference, columns
                              prediction, both in labels order

All floats are written as Python's repr (json.dumps), i.e. full double precision.
"""
import collections
import difflib
import json
import math
import platform
import re
import string
import sys
from pathlib import Path

import nltk
import rouge_score
import sacrebleu
import sklearn
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from sklearn import metrics as skm

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "testdata" / "raw" / "shakespeare"
OUT = ROOT / "testdata" / "eval"

N_GEN_EN = 600
N_GEN_MULTI = 50
N_GEN_ZH = 300
MIN_COVER = 0.75        # aligned word share a Folio/modern line pair needs (see align_hamlet)
CLS_CHUNK_WORDS = 180
CLS_UNKNOWN_BELOW = 0.55
CLS_MILTON_CHUNKS = 24
SEED_QA_EN = 20250611
SEED_QA_ZH = 20250612
N_QA = 140              # generated QA records per language (hand-made edge cases come on top)

VERSIONS = {"sacrebleu": sacrebleu.__version__, "rouge_score": "0.1.2", "sklearn": sklearn.__version__,
            "nltk": nltk.__version__, "python": platform.python_version()}
try:
    from importlib.metadata import version as _pkg_version
    VERSIONS["rouge_score"] = _pkg_version("rouge-score")
except Exception:  # pragma: no cover
    pass


# ----------------------------------------------------------------------------------------------
# output helpers


def write_jsonl(name, rows):
    path = OUT / name
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _fmt(o, ind):
    """JSON with dicts indented by 1 per level, list elements one a line (each written compactly),
    and anything whose compact form is <= 100 characters on one line."""
    compact = json.dumps(o, ensure_ascii=False)
    if len(compact) <= 100 or not isinstance(o, (dict, list)) or not o:
        return compact
    pad = " " * (ind + 1)
    if isinstance(o, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_fmt(v, ind + 1)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"
    items = [pad + json.dumps(x, ensure_ascii=False) for x in o]
    return "[\n" + ",\n".join(items) + "\n" + " " * ind + "]"


def write_json(name, obj):
    path = OUT / name
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(_fmt(obj, 0) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# Hamlet: align the First Folio with the modern-spelling edition

SPEAKER_MODERN = re.compile(r"^(?:\d |First |Second )?[A-Z][A-Za-z]*\.$")
SPEAKER_FOLIO = re.compile(r"^\s+(?:\d\.\s?)?[A-Z][A-Za-z]*\.\s+")


def modern_lines():
    """Speech lines of hamlet_gut.txt: no blank lines, [stage directions], speaker lines, ACT/Scene."""
    out, in_bracket = [], False
    for line in (RAW / "hamlet_gut.txt").read_text(encoding="utf-8").split("\n"):
        s = line.strip()
        if not s:
            continue
        if in_bracket:
            in_bracket = not s.endswith("]")
            continue
        if s.startswith("["):
            in_bracket = not s.endswith("]")
            continue
        if SPEAKER_MODERN.match(s) or re.match(r"^(ACT|Scene) ", s):
            continue
        out.append(s)
    return out


def folio_lines():
    """Speech lines of hamlet_gut_f.txt with the speaker prefix ("  Ham. ") cut off; no Enter/Exit."""
    out = []
    for line in (RAW / "hamlet_gut_f.txt").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        s = SPEAKER_FOLIO.sub("", line, count=1).strip()
        if re.match(r"^(Enter|Exit|Exeunt|Manet)\b", s) or re.match(r"^(Actus|Scena|Scoena)", s):
            continue
        if s:
            out.append(s)
    return out


def norm_word(w):
    """Spelling-insensitive key: letters only, lowercase, v->u j->i y->i, no doubled letters, no final e."""
    w = re.sub(r"[^a-z]", "", w.lower())
    w = w.replace("v", "u").replace("j", "i").replace("y", "i")
    w = re.sub(r"(.)\1+", r"\1", w)
    if len(w) > 2 and w.endswith("e"):
        w = w[:-1]
    return w


def align_hamlet():
    """Pairs (folio index, modern index, cover) of lines that are plausibly the same line.

    difflib.SequenceMatcher (autojunk off) over the two editions' normalised word sequences; each
    matched word votes for its (Folio line, modern line). A pair is kept when each line is the
    other's top vote and the votes cover >= MIN_COVER of the longer line's words."""
    F, M = folio_lines(), modern_lines()

    def words(lines):
        seq, owner = [], []
        for k, line in enumerate(lines):
            for w in line.split():
                n = norm_word(w)
                if n:
                    seq.append(n)
                    owner.append(k)
        return seq, owner

    fs, fo = words(F)
    ms, mo = words(M)
    sm = difflib.SequenceMatcher(None, fs, ms, autojunk=False)
    votes = collections.defaultdict(collections.Counter)
    rvotes = collections.defaultdict(collections.Counter)
    for b in sm.get_matching_blocks():
        for k in range(b.size):
            votes[fo[b.a + k]][mo[b.b + k]] += 1
            rvotes[mo[b.b + k]][fo[b.a + k]] += 1
    flen, mlen = collections.Counter(fo), collections.Counter(mo)
    pairs = []
    for f in sorted(votes):
        m, n = votes[f].most_common(1)[0]
        if rvotes[m].most_common(1)[0][0] != f:
            continue
        cover = n / max(flen[f], mlen[m])
        if cover >= MIN_COVER:
            pairs.append((f, m, cover))
    return F, M, pairs


def evenly(seq, k):
    """k elements of seq at evenly spaced positions (all of seq if k >= len)."""
    if k >= len(seq):
        return list(seq)
    return [seq[(i * len(seq)) // k] for i in range(k)]


VOWELS = set("aeiouAEIOU")


def regularise_uv(line):
    """Folio u/v regularised: word-initial v/V before a consonant -> u/U, u/U between vowels -> v/V."""
    def word(w):
        c = list(w)
        for i, ch in enumerate(c):
            if ch in "vV" and (i == 0 or not c[i - 1].isalpha()) and i + 1 < len(c) \
                    and c[i + 1].isalpha() and c[i + 1] not in VOWELS:
                c[i] = "u" if ch == "v" else "U"
            elif ch in "uU" and 0 < i < len(c) - 1 and w[i - 1] in VOWELS and w[i + 1] in VOWELS:
                c[i] = "v" if ch == "u" else "V"
        return "".join(c)
    return re.sub(r"\S+", lambda m: word(m.group(0)), line)


GEN_EN_EDGE = [
    ("It cost 1,000.50 ducats in 1603, or 3.14 times as much.",
     "It cost 1,000.50 ducats in 1603 - 3.14 times more."),
    ("The 1990-91 season ran from 1990-1991, not 1992-3.", "The 1990-91 season ran 1990–91."),
    ("Rosencrantz &amp; Guildenstern say &quot;farewell&quot; &lt;exit&gt; &#39;now&#39;",
     "Rosencrantz & Guildenstern say \"farewell\" <exit> 'now'"),
    ("\"To be, or not to be,\" he said, 'that is the question.'",
     "'To be, or not to be' -- that is the question."),
    ("", "Who's there?"),
    ("Nay, answer me: stand, and unfold yourself.", "Nay, answer me: stand, and unfold yourself."),
    ("Words, words, words — “mere words,” he’d say… ‘so’", "Words, words, words - \"mere words,\" he'd say... 'so'"),
    ("The\trest   is\t\tsilence.  ", "The rest is silence."),
    ("Farewell", "Farewell!"),
    ("GET THEE TO A NUNNERY", "Get thee to a nunnery."),
    ("the the the the the the the", "the cat sat on the mat by the door"),
    ("O, that this too too solid flesh would melt,\nThaw, and resolve itself into a dew!",
     "O, that this too too solid flesh would melt, Thaw, and resolve itself into a dew!"),
    ("When we have shuffled off this mor-\ntal coil", "When we have shuffled off this mortal coil"),
    ("   ", "Silence."),
    ("Thinking makes it so; nothing is either good or bad, and running men are ruined by their loves.",
     "There is nothing either good or bad, but thinking makes it so."),
    ("See http://www.gutenberg.org/ebooks/1524 (Hamlet) for $5 & 50% off!", "See www.gutenberg.org/ebooks/1524 for Hamlet."),
    ("Hamlet (哈姆雷特) — Принц датский", "Hamlet, Prince of Denmark"),
    ("I’ll speak to it, though hell itself should gape", "I'll speak to it though hell itself should gape"),
    ("e.g. Mr. Osric's hat, i.e. 'tis U.S.A.-made.", "E.g., Mr Osric's hat, that is, it's made in the U.S.A."),
]


def gen_en_and_multi():
    F, M, pairs = align_hamlet()
    chosen = evenly(pairs, N_GEN_EN)
    chosen_set = {(f, m) for f, m, _ in chosen}
    rest = [(f, m, c) for f, m, c in pairs if (f, m) not in chosen_set and regularise_uv(F[f]) != F[f]]
    multi = evenly(rest, N_GEN_MULTI)
    en = [{"id": f"hamlet/{f}~{m}", "response": F[f], "reference": M[m]} for f, m, _ in chosen]
    en += [{"id": f"edge/{i:02d}", "response": r, "reference": ref} for i, (r, ref) in enumerate(GEN_EN_EDGE)]
    mu = [{"id": f"hamlet/{f}~{m}", "response": F[f], "references": [M[m], regularise_uv(F[f])]}
          for f, m, _ in multi]
    return en, mu, len(pairs)


# ----------------------------------------------------------------------------------------------
# Song ci: the 300 anthology's near-only poems vs their nearest ci variant


def char5(text):
    """Char 5-gram set as dedup computes it (scripts/bench_datasketch_dedup.py shingles(text, "char", 5))."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_datasketch_dedup import shingles
    return shingles(text, "char", 5)


def songci_near():
    rows = [json.loads(line) for line in open(ROOT / "testdata" / "dedup" / "songci.jsonl", encoding="utf-8")]
    full = [r for r in rows if r["id"].startswith("ci/")]
    s300 = [r for r in rows if r["id"].startswith("300/")]
    exact = {r["text"] for r in full}
    sets300 = [char5(r["text"]) for r in s300]
    need = set().union(*sets300)
    inv = collections.defaultdict(list)
    fsets = []
    for i, r in enumerate(full):
        s = char5(r["text"])
        fsets.append(s)
        for g in s & need:
            inv[g].append(i)
    out = []
    for r, s in zip(s300, sets300):
        if r["text"] in exact:
            continue
        cnt = collections.Counter()
        for g in s:
            cnt.update(inv.get(g, ()))
        best = None
        for i in sorted(cnt, key=lambda i: (-cnt[i], i))[:50]:
            j = len(s & fsets[i]) / len(s | fsets[i])
            if best is None or j > best[0]:
                best = (j, i)
        if best and best[0] >= 0.8:
            out.append((r, full[best[1]], best[0]))
    return out, s300


def gen_zh():
    near, _ = songci_near()
    assert len(near) == 90, len(near)
    diff, same = [], []
    for a, b, _ in near:
        la, lb = a["text"].split("\n"), b["text"].split("\n")
        assert len(la) == len(lb), (a["id"], b["id"])
        for k in range(1, len(la)):
            (diff if la[k] != lb[k] else same).append((a["id"], b["id"], k, la[k], lb[k]))
    keep_same = N_GEN_ZH - len(near) - len(diff)
    keep = {(x[0], x[2]) for x in diff} | {(x[0], x[2]) for x in evenly(same, keep_same)}
    rows = []
    for a, b, _ in near:
        la, lb = a["text"].split("\n"), b["text"].split("\n")
        rows.append({"id": f"{a['id']}~{b['id']}", "response": "".join(la[1:]), "reference": "".join(lb[1:])})
        for k in range(1, len(la)):
            if (a["id"], k) in keep:
                rows.append({"id": f"{a['id']}~{b['id']}:{k}", "response": la[k], "reference": lb[k]})
    return rows, near


# ----------------------------------------------------------------------------------------------
# sacrebleu / rouge-score references


class CharTokenizer:
    """rouge-score tokenizer for Chinese: one token per non-whitespace character, nothing removed."""

    def tokenize(self, text):
        return [c for c in text if not c.isspace()]


ROUGE_TYPES = ["rouge1", "rouge2", "rougeL"]
OUTPUTS = ["gen_en.jsonl", "gen_zh.jsonl", "gen_multi.jsonl", "gen_expected.json", "qa_en.jsonl", "qa_zh.jsonl",
           "qa_expected.json", "cls.jsonl", "cls_expected.json"]


def gen_expected(name, rows, tokenize, multi=False, char_rouge=False):
    hyps = [r["response"] for r in rows]
    refs = [r["references"] if multi else [r["reference"]] for r in rows]
    streams = [list(s) for s in zip(*refs)]
    bleu = BLEU(tokenize=tokenize)
    b = bleu.corpus_score(hyps, streams)
    chrf, chrfpp = CHRF(), CHRF(word_order=2)
    c = chrf.corpus_score(hyps, streams)
    cpp = chrfpp.corpus_score(hyps, streams)
    sbleu = BLEU(tokenize=tokenize, effective_order=True)
    variants = {"default": {"use_stemmer": False, "tokenizer": "default"},
                "stemmer": {"use_stemmer": True, "tokenizer": "default"}}
    scorers = {"default": rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=False),
               "stemmer": rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True)}
    if char_rouge:
        variants["char"] = {"use_stemmer": False, "tokenizer": "char"}
        scorers["char"] = rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=False, tokenizer=CharTokenizer())
    records = []
    for r, h, rf in zip(rows, hyps, refs):
        rec = {"id": r["id"], "bleu": sbleu.sentence_score(h, rf).score,
               "chrf": chrf.sentence_score(h, rf).score, "chrf_pp": chrfpp.sentence_score(h, rf).score,
               "rouge": {}}
        for v, sc in scorers.items():
            s = sc.score_multi(rf, h) if multi else sc.score(target=rf[0], prediction=h)
            rec["rouge"][v] = {t: [s[t].precision, s[t].recall, s[t].fmeasure] for t in ROUGE_TYPES}
        records.append(rec)
    means = {v: {t: sum(rec["rouge"][v][t][2] for rec in records) / len(records) for t in ROUGE_TYPES}
             for v in scorers}
    return {
        "file": name, "n": len(rows), "tokenize": tokenize,
        "corpus": {
            "bleu": {"score": b.score, "counts": list(b.counts), "totals": list(b.totals),
                     "precisions": list(b.precisions), "bp": b.bp, "ratio": b.sys_len / b.ref_len if b.ref_len else 0,
                     "sys_len": b.sys_len, "ref_len": b.ref_len, "signature": str(bleu.get_signature())},
            "chrf": {"score": c.score, "signature": str(chrf.get_signature())},
            "chrf_pp": {"score": cpp.score, "signature": str(chrfpp.get_signature())},
            "rouge_mean_fmeasure": means,
        },
        "rouge_variants": variants,
        "sentence_bleu_signature": str(sbleu.get_signature()),
        "records": records,
    }


# ----------------------------------------------------------------------------------------------
# QA, English: SQuAD v1.1 official evaluation (evaluate-v1.1.py), copied verbatim
# Source: https://github.com/allenai/bi-att-flow/blob/master/squad/evaluate-v1.1.py
# (the script distributed with SQuAD v1.1, "Official evaluation script for v1.1 of the SQuAD dataset")


def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)

# (end of the copy of evaluate-v1.1.py; its evaluate() sums these per question and reports
#  exact_match = 100.0 * exact_match / total, f1 = 100.0 * f1 / total)


# ----------------------------------------------------------------------------------------------
# QA, Chinese: CMRC 2018 official evaluation (cmrc2018_evaluate.py, "v5 - special"), ported to
# Python 3 and otherwise copied verbatim.
# Source: https://github.com/ymcui/cmrc2018/blob/master/squad-style-data/cmrc2018_evaluate.py
# Python 3 port: str(in_str).decode('utf-8') -> str(in_str); ur'[\u4e00-\u9fa5]' -> r'[\u4e00-\u9fa5]'.
# One deliberate change (nltk's punkt data, which nltk.word_tokenize needs, is not available offline):
# the runs of non-CJK, non-sp_char characters that the original passes to nltk.word_tokenize are
# split by _split_run() instead: maximal runs of ASCII letters/digits [A-Za-z0-9]+ are one token each,
# every other non-whitespace character is a token on its own, whitespace is dropped
# (re.findall(r"[A-Za-z0-9]+|\S", run)). The input is already lowercased at that point.

def _split_run(run):
    return re.findall(r"[A-Za-z0-9]+|\S", run)


_WORD_TOKENIZE = _split_run   # swapped for nltk's preserve_line tokenizer only to list the differences


# split Chinese with English
def mixed_segmentation(in_str, rm_punc=False):
    in_str = str(in_str).lower().strip()
    segs_out = []
    temp_str = ""
    sp_char = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
               '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
               '「', '」', '（', '）', '－', '～', '『', '』']
    for char in in_str:
        if rm_punc and char in sp_char:
            continue
        if re.search(r'[\u4e00-\u9fa5]', char) or char in sp_char:
            if temp_str != "":
                ss = _WORD_TOKENIZE(temp_str)   # original: nltk.word_tokenize(temp_str)
                segs_out.extend(ss)
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char

    # handling last part
    if temp_str != "":
        ss = _WORD_TOKENIZE(temp_str)   # original: nltk.word_tokenize(temp_str)
        segs_out.extend(ss)

    return segs_out


# remove punctuation
def remove_punctuation(in_str):
    in_str = str(in_str).lower().strip()
    sp_char = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
               '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
               '「', '」', '（', '）', '－', '～', '『', '』']
    out_segs = []
    for char in in_str:
        if char in sp_char:
            continue
        else:
            out_segs.append(char)
    return ''.join(out_segs)


# find longest common string
def find_lcs(s1, s2):
    m = [[0 for i in range(len(s2) + 1)] for j in range(len(s1) + 1)]
    mmax = 0
    p = 0
    for i in range(len(s1)):
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                m[i + 1][j + 1] = m[i][j] + 1
                if m[i + 1][j + 1] > mmax:
                    mmax = m[i + 1][j + 1]
                    p = i + 1
    return s1[p - mmax:p], mmax


def calc_f1_score(answers, prediction):
    f1_scores = []
    for ans in answers:
        ans_segs = mixed_segmentation(ans, rm_punc=True)
        prediction_segs = mixed_segmentation(prediction, rm_punc=True)
        lcs, lcs_len = find_lcs(ans_segs, prediction_segs)
        if lcs_len == 0:
            f1_scores.append(0)
            continue
        precision = 1.0 * lcs_len / len(prediction_segs)
        recall = 1.0 * lcs_len / len(ans_segs)
        f1 = (2 * precision * recall) / (precision + recall)
        f1_scores.append(f1)
    return max(f1_scores)


def calc_em_score(answers, prediction):
    em = 0
    for ans in answers:
        ans_ = remove_punctuation(ans)
        prediction_ = remove_punctuation(prediction)
        if ans_ == prediction_:
            em = 1
            break
    return em

# (end of the copy; its evaluate() sums these per question and reports
#  f1_score = 100.0 * f1 / total_count, em_score = 100.0 * em / total_count)


# ----------------------------------------------------------------------------------------------
# QA data


NP = re.compile(r"\b((?:the|a|an|my|thy|his|her|our|your|their|this|that|The|A|An|My|Thy|His|Her|Our|Your|This)"
                r"\s+[A-Za-z'-]+(?:\s+[A-Za-z'-]+){0,2})(?=[,.;:!?]|$)")
DETS = {"the", "a", "an", "my", "thy", "his", "her", "our", "your", "their", "this", "that"}
QA_EN_TYPES = ["exact", "case", "article", "punct", "longer_before", "longer_after", "shorter", "shift",
               "wrong", "whole_line", "whitespace", "unicode_punct", "exact_second_answer"]


def play_lines():
    """Speech lines of the modern-spelling plays and the Sonnets in english.jsonl (not hamlet_gut_f)."""
    out = []
    for line in open(ROOT / "testdata" / "english.jsonl", encoding="utf-8"):
        d = json.loads(line)
        if d["source"] == "hamlet_gut_f":
            continue
        for k, s in enumerate(d["text"].split("\n")):
            s = s.strip()
            if not s or s.startswith("[") or SPEAKER_MODERN.match(s) or s.isupper():
                continue
            out.append((f"{d['id']}:{k}", s))
    return out


QA_EN_EDGE = [
    ("An apple a day", ["apple day"]),
    ("1,000 ducats", ["1000 ducats"]),
    ("!!!", ["..."]),
    ("the", ["The"]),
    ("Ophelia’s", ["Ophelia's"]),
    ("", ["Yorick"]),
    ("the the the king", ["the king", "king king"]),
    ("Straße", ["STRASSE", "strasse"]),
    ("Rosencrantz and Guildenstern", ["Guildenstern and Rosencrantz"]),
    ("an    anthem\tof the\nDanes", ["Anthem of Danes"]),
]


def gen_qa_en():
    import random
    rng = random.Random(SEED_QA_EN)
    cands = []
    for lid, s in play_lines():
        ms = list(NP.finditer(s))
        if ms:
            cands.append((lid, s, ms[-1]))
    picks = sorted(rng.sample(range(len(cands)), N_QA))
    rows = []
    for i, ci in enumerate(picks):
        lid, line, m = cands[ci]
        span = m.group(1)
        start, end = m.span(1)
        words = span.split()
        answers = [span]
        if len(words) > 1 and words[0].lower() in DETS:
            answers.append(" ".join(words[1:]))
        if end < len(line) and line[end] in ",.;:!?":
            answers.append(span + line[end])
        else:
            answers.append(span.capitalize() if span[0].islower() else span.lower())
        answers = list(dict.fromkeys(answers))[:1 + i % 3]
        before, after = line[:start].split(), line[end:].split()
        kind = QA_EN_TYPES[i % len(QA_EN_TYPES)]
        if kind == "exact":
            pred = span
        elif kind == "case":
            pred = span.upper() if i % 2 else span.title()
        elif kind == "article":  # article swapped ("the X" -> "A X"), or another determiner -> "the"
            if words[0].lower() in ("the", "a", "an"):
                pred = ("An " if words[0].lower() == "a" else "A " if i % 2 else "a ") + " ".join(words[1:])
            else:
                pred = "the " + " ".join(words[1:])
        elif kind == "punct":
            pred = ['"{}"', "{}.", "({})", "'{}!'", "{},"][i % 5].format(span)
        elif kind == "longer_before":  # the line text from 1-3 words before the span to its end
            b = [mm.start() for mm in re.finditer(r"\S+", line[:start])]
            pred = line[b[-min(len(b), 1 + i % 3)]:end] if b else line[start:].rstrip()
        elif kind == "longer_after":  # the span and what follows it on the line, up to 1-3 more words
            a = [mm.end() for mm in re.finditer(r"\S*[A-Za-z]\S*", line[end:])]
            b = [mm.start() for mm in re.finditer(r"\S+", line[:start])]
            if a:
                pred = line[start:end + a[min(len(a), 1 + i % 3) - 1]]
            else:
                pred = line[b[-min(len(b), 2)]:end] if b else line[start:].rstrip()
        elif kind == "shorter":
            pred = " ".join(words[1:]) if len(words) > 2 else words[-1]
            if i % 2 and len(words) > 2:
                pred = " ".join(words[:-1])
        elif kind == "shift":
            ctx = before + words
            pred = " ".join(ctx[-len(words) - 1:-1]) if before else " ".join(words[1:] + after[:1])
        elif kind == "wrong":
            pred = cands[(ci + 7919) % len(cands)][2].group(1)
        elif kind == "whole_line":
            pred = line
        elif kind == "whitespace":
            pred = [" ", "  ", "\t", "\n"][i % 4].join(words) + ("  " if i % 2 else "")
        elif kind == "unicode_punct":
            pred = ["“{}”", "{}…", "{} —", "‘{}’"][i % 4].format(span)
        else:  # exact_second_answer
            pred = answers[-1]
        rows.append({"id": f"{lid}/{kind}", "prediction": pred, "answers": answers})
    rows += [{"id": f"edge/{k:02d}", "prediction": p, "answers": a} for k, (p, a) in enumerate(QA_EN_EDGE)]
    return rows


ZH_PUNCT = "，。、；？！："
QA_ZH_TYPES = ["exact", "punct", "longer_before", "longer_after", "shorter", "shift", "wrong",
               "whole_line", "spaces", "variant", "ascii_punct", "ellipsis", "quotes"]

QA_ZH_EDGE = [
    ("宋词300首", ["宋词三百首"]),
    ("Song Ci 三百首", ["song ci三百首", "宋词三百首"]),
    ("李清照（1084－1155）", ["李清照"]),
    ("苏轼·东坡", ["苏轼东坡"]),
    ("辛弃疾・稼轩", ["辛弃疾稼轩"]),
    ("don't stop 念奴娇", ["念奴娇"]),
    ("1,000年", ["千年", "1000年"]),
    ("…", ["……"]),
    ("", ["浣溪沙"]),
    ("ＡＢＣ词牌—水调歌头", ["abc词牌水调歌头", "水调歌头"]),
]


def gen_qa_zh(near):
    import random
    rng = random.Random(SEED_QA_ZH)
    variants = {}  # (300 id, line index) -> ci variant line
    for a, b, _ in near:
        for k, (x, y) in enumerate(zip(a["text"].split("\n"), b["text"].split("\n"))):
            if k and x != y:
                variants[(a["id"], k)] = y
    rows300 = [json.loads(line) for line in open(ROOT / "testdata" / "dedup" / "songci.jsonl", encoding="utf-8")
               if line.startswith('{"id": "300/')]
    cands = []  # (id, line, clause start, clause end)
    for r in rows300:
        for k, line in enumerate(r["text"].split("\n")[1:], start=1):
            pos = 0
            for seg in re.split(f"([{ZH_PUNCT}])", line):
                if seg and seg not in ZH_PUNCT and len(seg) >= 3:
                    cands.append((r["id"], k, line, pos, pos + len(seg)))
                pos += len(seg)
    # 12 lines that have a variant in the ci copy (evenly spaced) get kind "variant"; the others are a
    # seeded sample and cycle through the other kinds; records are in poem/line order
    with_var = evenly([c for c in cands if (c[0], c[1]) in variants], 12)
    rest = [c for c in cands if c not in set(with_var)]
    picks = [(c, "variant") for c in with_var] + [(c, None) for c in rng.sample(rest, N_QA - len(with_var))]
    order = {c: n for n, c in enumerate(cands)}
    picks.sort(key=lambda x: order[x[0]])
    other_kinds = [t for t in QA_ZH_TYPES if t != "variant"]
    rows = []
    for i, ((pid, k, line, s, e), kind) in enumerate(picks):
        ci = order[(pid, k, line, s, e)]
        v = rng.randrange(60)  # picks the variation within a kind (i itself is tied to the kind)
        clause_no = sum(1 for ch in line[:s] if ch in ZH_PUNCT)
        if v % 2 and e - s >= 5:                 # a sub-span of the clause
            s, e = s + 1 + v % 3 // 2, e - (v % 5 == 0)
        span = line[s:e]
        answers = [span]
        if e < len(line) and line[e] in ZH_PUNCT:
            answers.append(span + line[e])
        if len(span) >= 4:
            answers.append(span[1:])
        answers = list(dict.fromkeys(answers))[:1 + v % 3]
        kind = kind or other_kinds[i % len(other_kinds)]
        if kind == "exact":
            pred = span
        elif kind == "punct":
            pred = ["{}。", "{}，", "《{}》", "「{}」", "{}！"][v % 5].format(span)
        elif kind == "longer_before":
            pred = line[max(0, s - 1 - v % 4):e]
        elif kind == "longer_after":
            pred = line[s:min(len(line), e + 1 + v % 4)]
        elif kind == "shorter":
            pred = span[1:] if v % 2 else span[:-1]
        elif kind == "shift":
            pred = line[s + 1:e + 1] if e < len(line) else line[max(0, s - 1):e - 1]
        elif kind == "wrong":
            w = cands[(ci + 4099) % len(cands)]
            pred = w[2][w[3]:w[4]]
        elif kind == "whole_line":
            pred = line
        elif kind == "spaces":
            pred = " ".join(span) if v % 2 else " " + span + " 。"
        elif kind == "variant":
            v = variants[(pid, k)]
            vc = [x for x in re.split(f"[{ZH_PUNCT}]", v) if x]
            pred = v[s:e] if len(v) == len(line) else (vc[clause_no] if clause_no < len(vc) else v)
        elif kind == "ascii_punct":
            pred = ["{},", "{}.", "\"{}\"", "{}!", "({})"][v % 5].format(span)
        elif kind == "ellipsis":
            pred = span + "……"
        else:  # quotes
            pred = ["“{}”", "『{}』", "‘{}’"][v % 3].format(span)
        rows.append({"id": f"{pid}:{k}/{kind}", "prediction": pred, "answers": answers})
    rows += [{"id": f"edge/{k:02d}", "prediction": p, "answers": a} for k, (p, a) in enumerate(QA_ZH_EDGE)]
    return rows


def qa_expected():
    global _WORD_TOKENIZE
    en = [json.loads(line) for line in open(OUT / "qa_en.jsonl", encoding="utf-8")]
    zh = [json.loads(line) for line in open(OUT / "qa_zh.jsonl", encoding="utf-8")]
    en_recs = [{"id": r["id"],
                "em": int(metric_max_over_ground_truths(exact_match_score, r["prediction"], r["answers"])),
                "f1": float(metric_max_over_ground_truths(f1_score, r["prediction"], r["answers"]))}
               for r in en]
    _WORD_TOKENIZE = _split_run
    zh_recs = [{"id": r["id"], "em": int(calc_em_score(r["answers"], r["prediction"])),
                "f1": float(calc_f1_score(r["answers"], r["prediction"]))} for r in zh]
    _WORD_TOKENIZE = lambda run: nltk.word_tokenize(run, preserve_line=True)  # noqa: E731
    alt = [float(calc_f1_score(r["answers"], r["prediction"])) for r in zh]
    _WORD_TOKENIZE = _split_run
    mean = lambda xs: 100.0 * sum(xs) / len(xs)  # noqa: E731
    return {
        "_comment": "see scripts/gen_eval_fixtures.py and testdata/README.md",
        "versions": VERSIONS,
        "qa_en": {"file": "qa_en.jsonl", "n": len(en),
                  "method": "SQuAD v1.1 evaluate-v1.1.py (normalize_answer, f1_score, exact_match_score, "
                            "metric_max_over_ground_truths), copied verbatim",
                  "exact_match": mean([r["em"] for r in en_recs]), "f1": mean([r["f1"] for r in en_recs]),
                  "records": en_recs},
        "qa_zh": {"file": "qa_zh.jsonl", "n": len(zh),
                  "method": "CMRC 2018 cmrc2018_evaluate.py (mixed_segmentation, remove_punctuation, find_lcs, "
                            "calc_f1_score, calc_em_score) ported to Python 3; non-CJK runs split by "
                            "re.findall(r'[A-Za-z0-9]+|\\S', run) instead of nltk.word_tokenize",
                  "exact_match": mean([r["em"] for r in zh_recs]), "f1": mean([r["f1"] for r in zh_recs]),
                  "records": zh_recs,
                  "nltk_preserve_line": {"f1": mean(alt),
                                         "differs": [{"id": r["id"], "f1": a} for r, a in zip(zh_recs, alt)
                                                     if a != r["f1"]]}},
    }


# ----------------------------------------------------------------------------------------------
# classification


CLS_NAMES = {"hamlet_gut": "hamlet", "hamlet_gut_f": "hamlet_folio", "macbeth_gut": "macbeth",
             "midsummer_nights_dream_gut": "midsummer", "sonnets_gut": "sonnets", "tempest_gut": "tempest"}


def cls_chunks(text):
    """Non-blank lines grouped into chunks of >= CLS_CHUNK_WORDS words (a short tail joins the last)."""
    out, cur, n = [], [], 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        cur.append(line)
        n += len(line.split())
        if n >= CLS_CHUNK_WORDS:
            out.append("\n".join(cur))
            cur, n = [], 0
    if cur:
        if out and n < CLS_CHUNK_WORDS / 2:
            out[-1] += "\n" + "\n".join(cur)
        else:
            out.append("\n".join(cur))
    return out


def gen_cls():
    by_label = collections.defaultdict(list)  # label -> [(chunk id, text)] in file order
    for line in open(ROOT / "testdata" / "english.jsonl", encoding="utf-8"):
        d = json.loads(line)
        for k, c in enumerate(cls_chunks(d["text"])):
            by_label[CLS_NAMES[d["source"]]].append((f"{d['id']}#{k}", c))
    milton = [json.loads(line) for line in open(ROOT / "testdata" / "dedup" / "milton.jsonl", encoding="utf-8")]
    pr = next(m for m in milton if m["id"] == "paradise_regained_gut.txt")["text"].replace("\r", "")
    mchunks = [(f"milton/paradise_regained_gut.txt#{k}", c) for k, c in enumerate(cls_chunks(pr))]

    def feats(t):
        return collections.Counter(re.findall(r"[a-z']+", t.lower()))

    cent = {}
    for lab in sorted(by_label):
        c = collections.Counter()
        for i, (_, t) in enumerate(by_label[lab]):
            if i % 2 == 0:
                c.update(feats(t))
        cent[lab] = c
    norms = {lab: math.sqrt(sum(v * v for v in c.values())) for lab, c in cent.items()}

    def predict(t):
        f = feats(t)
        nf = math.sqrt(sum(v * v for v in f.values()))
        best = max(((sum(v * cent[lab].get(w, 0) for w, v in f.items()) / (nf * norms[lab]), lab)
                    for lab in sorted(cent)), key=lambda x: (x[0], x[1]))
        return best[1] if best[0] >= CLS_UNKNOWN_BELOW else "unknown"

    rows = []
    for lab in sorted(by_label):
        for i, (cid, t) in enumerate(by_label[lab]):
            if i % 2 == 1:
                rows.append({"id": cid, "prediction": predict(t), "reference": lab})
    for cid, t in mchunks[2:2 + CLS_MILTON_CHUNKS]:
        rows.append({"id": cid, "prediction": predict(t), "reference": "milton"})
    return rows


def cls_expected(rows):
    pred = [r["prediction"] for r in rows]
    ref = [r["reference"] for r in rows]
    labels = sorted(set(pred) | set(ref))
    p, r, f, s = skm.precision_recall_fscore_support(ref, pred, average=None, labels=labels, zero_division=0)
    avg = {}
    for a in ("macro", "micro", "weighted"):
        avg[a] = {"precision": float(skm.precision_score(ref, pred, labels=labels, average=a, zero_division=0)),
                  "recall": float(skm.recall_score(ref, pred, labels=labels, average=a, zero_division=0)),
                  "f1": float(skm.f1_score(ref, pred, labels=labels, average=a, zero_division=0))}
    return {
        "_comment": "see scripts/gen_eval_fixtures.py and testdata/README.md",
        "versions": VERSIONS, "file": "cls.jsonl", "n": len(rows),
        "labels": labels,
        "accuracy": float(skm.accuracy_score(ref, pred)),
        "per_label": {"precision": [float(x) for x in p], "recall": [float(x) for x in r],
                      "f1": [float(x) for x in f], "support": [int(x) for x in s]},
        **avg,
        "confusion_matrix": [[int(x) for x in row] for row in skm.confusion_matrix(ref, pred, labels=labels)],
    }


# ----------------------------------------------------------------------------------------------


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    en, multi, n_pairs = gen_en_and_multi()
    zh, near = gen_zh()
    write_jsonl("gen_en.jsonl", en)
    write_jsonl("gen_zh.jsonl", zh)
    write_jsonl("gen_multi.jsonl", multi)
    exp = {"_comment": "see scripts/gen_eval_fixtures.py (module docstring) and testdata/README.md",
           "versions": VERSIONS,
           "gen_en": gen_expected("gen_en.jsonl", en, "13a"),
           "gen_zh": gen_expected("gen_zh.jsonl", zh, "zh", char_rouge=True),
           "gen_multi": gen_expected("gen_multi.jsonl", multi, "13a", multi=True)}
    write_json("gen_expected.json", exp)
    write_jsonl("qa_en.jsonl", gen_qa_en())
    write_jsonl("qa_zh.jsonl", gen_qa_zh(near))
    qa = qa_expected()
    write_json("qa_expected.json", qa)
    cls = gen_cls()
    write_jsonl("cls.jsonl", cls)
    ce = cls_expected(cls)
    write_json("cls_expected.json", ce)

    print(f"Hamlet aligned pairs: {n_pairs}; Song ci near-only poems: {len(near)}")
    for k in ("gen_en", "gen_zh", "gen_multi"):
        e = exp[k]
        c = e["corpus"]
        rouge = ", ".join(f"{v}: " + "/".join(f"{c['rouge_mean_fmeasure'][v][t]:.4f}" for t in ROUGE_TYPES)
                          for v in c["rouge_mean_fmeasure"])
        print(f"{k}: n={e['n']} BLEU={c['bleu']['score']:.4f} (bp {c['bleu']['bp']:.4f}) "
              f"chrF={c['chrf']['score']:.4f} chrF++={c['chrf_pp']['score']:.4f}; "
              f"mean ROUGE-1/2/L F {rouge}")
    for k in ("qa_en", "qa_zh"):
        print(f"{k}: n={qa[k]['n']} EM={qa[k]['exact_match']:.4f} F1={qa[k]['f1']:.4f}")
    print(f"qa_zh with nltk preserve_line: F1={qa['qa_zh']['nltk_preserve_line']['f1']:.4f} "
          f"({len(qa['qa_zh']['nltk_preserve_line']['differs'])} records differ)")
    print(f"cls: n={ce['n']} labels={ce['labels']} accuracy={ce['accuracy']:.4f} "
          f"macro F1={ce['macro']['f1']:.4f} micro F1={ce['micro']['f1']:.4f} weighted F1={ce['weighted']['f1']:.4f}")
    total = 0
    for p in sorted(OUT / n for n in OUTPUTS):
        total += p.stat().st_size
        print(f"  {p.relative_to(ROOT)}: {p.stat().st_size} bytes")
    print(f"  total {total} bytes")


if __name__ == "__main__":
    main()
