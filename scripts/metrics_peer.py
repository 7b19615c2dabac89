"""The Python side of scripts/bench_metrics.sh: the same generation metrics as
`eval --task generation` computed with the reference packages.

  metrics_peer.py pairs OUT.jsonl [N]   write N (default 20000) prediction/reference pairs made of
                                        consecutive lines of testdata/english.jsonl (each line
                                        the "response", the next line of its scene the
                                        "reference"; all pairs distinct, so sacreBLEU's
                                        tokenizer cache gains nothing from repeats)
  metrics_peer.py score PAIRS.jsonl     corpus BLEU and chrF (sacrebleu), mean ROUGE-1/2/L F
                                        (rouge-score, no stemming); prints one JSON line with the
                                        scores and the seconds spent computing them

Needs sacrebleu and rouge-score (scripts/requirements.txt).
"""
import json
import sys
import time


def make_pairs(out, n):
    pairs = []
    seen = set()
    with open("testdata/english.jsonl", encoding="utf-8") as f:
        for line in f:
            lines = [l.strip() for l in json.loads(line)["text"].split("\n") if l.strip()]
            for a, b in zip(lines, lines[1:]):
                if (a, b) not in seen:
                    seen.add((a, b))
                    pairs.append((a, b))
    if len(pairs) < n:
        sys.exit(f"metrics_peer: only {len(pairs)} distinct pairs in testdata/english.jsonl, asked for {n}")
    with open(out, "w", encoding="utf-8") as f:
        for i, (a, b) in enumerate(pairs[:n]):
            f.write(json.dumps({"id": i, "response": a, "reference": b}, ensure_ascii=False) + "\n")


def score(path):
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU, CHRF

    hyps, refs = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            hyps.append(r["response"])
            refs.append(r["reference"])
    t = time.perf_counter()
    bleu = BLEU().corpus_score(hyps, [refs]).score
    chrf = CHRF().corpus_score(hyps, [refs]).score
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    sums = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for h, r in zip(hyps, refs):
        s = scorer.score(r, h)
        for k in sums:
            sums[k] += s[k].fmeasure
    secs = time.perf_counter() - t
    out = {"bleu": bleu, "chrf": chrf, "seconds": secs, "records": len(hyps)}
    out.update({k: v / len(hyps) for k, v in sums.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "pairs":
        make_pairs(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 20000)
    elif len(sys.argv) == 3 and sys.argv[1] == "score":
        score(sys.argv[2])
    else:
        sys.exit(__doc__)
