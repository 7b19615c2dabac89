#!/usr/bin/env python3
"""Summary tables of scripts/bench_precision.sh (called by it; not a benchmark of its own).

    .venv/bin/python scripts/bench_precision_report.py SECTION RESULTS.jsonl [KEY=VALUE ...]

RESULTS.jsonl holds one object per timed run: {"s": section, "label", "run", and the run's
numbers: "ms" (median ms/step), "kb" (peak RSS, KiB), "tps" (tokens/s), "steady" (ppl's
tokens/s after its first batch), "wall" (seconds), "nll"}. For each (section, label) the median
over runs of every number is shown, then the ratios the issue sets targets for, each marked
"met" or "MISSED" (or "-" when a side is absent, e.g. the wick side skipped). KEY=VALUE pairs
carry the section's settings into the headings, and for d the paths of the last generate outputs
(wick_gen, hf_gen) whose greedy ids are compared.
"""

import json
import statistics
import sys


def load(path, section):
    runs = {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if r["s"] == section:
            runs.setdefault(r["label"], []).append(r)
    return runs


class Med:
    def __init__(self, runs):
        self.runs = runs

    def __call__(self, label, key):
        vals = [r[key] for r in self.runs.get(label, []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def n(self, label):
        return len(self.runs.get(label, []))


def fmt(v, spec):
    """format(v, spec), or "-" right-aligned to the spec's width when v is None."""
    if v is not None:
        return format(v, spec)
    width = spec.split(".")[0]
    return "-".rjust(int(width)) if width.isdigit() else "-"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def target(name, value, op, goal, note=""):
    if value is None:
        verdict = "-"
        shown = "-"
    else:
        ok = value <= goal if op == "<=" else value >= goal
        verdict = "met" if ok else "MISSED"
        shown = f"{value:.2f}"
    tail = f"  {note}" if note else ""
    print(f"  {name:<44} {shown:>7}   target {op} {goal:<4}  {verdict}{tail}")


def mib(kb):
    return None if kb is None else kb / 1024


def section_a(m, kv):
    print(f"== a. train step, small preset, batch {kv['B']} x {kv['T']}: median over "
          f"{kv['runs']} runs of each run's median ms/step (steps 6..{kv['steps']}) ==")
    tokens = int(kv["B"]) * int(kv["T"])
    print(f"  {'':<12} {'ms/step':>10} {'tokens/s':>10} {'peak RSS MiB':>13}")
    for label in ("wick-f32", "wick-bf16", "torch-f32", "torch-bf16"):
        if m.n(label):
            ms = m(label, "ms")
            print(f"  {label:<12} {fmt(ms, '10.1f')} {fmt(tokens / ms * 1000, '10.0f')} "
                  f"{fmt(mib(m(label, 'kb')), '13.0f')}")
    print("ratios (time per step; below 1 = the first is faster):")
    target("wick bf16 / wick f32", ratio(m("wick-bf16", "ms"), m("wick-f32", "ms")), "<=", 0.6)
    target("wick bf16 / torch bf16 (autocast)", ratio(m("wick-bf16", "ms"), m("torch-bf16", "ms")),
           "<=", 1.0)
    for a, b in (("torch-bf16", "torch-f32"), ("wick-f32", "torch-f32")):
        r = ratio(m(a, "ms"), m(b, "ms"))
        if r is not None:
            print(f"  {a.replace('-', ' ')} / {b.replace('-', ' '):<{44 - len(a) - 3}} {r:7.2f}   (for reference)")


def section_b(m, kv):
    print(f"== b. quality: nano preset, {kv['steps']} steps (bench_train.sh's recipe), val NLL by "
          f"one evaluator: ppl --seq-len 64 --dtype f32 on the val split ==")
    print(f"  {'':<10} {'val NLL':>9} {'ppl':>9} {'own val loss':>13} {'wall s':>8} {'peak RSS MiB':>13}")
    import math
    for label in ("wick-f32", "wick-bf16"):
        if m.n(label):
            nll = m(label, "nll")
            print(f"  {label:<10} {nll:9.4f} {math.exp(nll):9.2f} {fmt(m(label, 'own_val'), '13.4f')} "
                  f"{fmt(m(label, 'wall'), '8.1f')} {fmt(mib(m(label, 'kb')), '13.0f')}")
    a, b = m("wick-bf16", "nll"), m("wick-f32", "nll")
    d = None if a is None or b is None else a - b
    if d is not None:
        print(f"  NLL bf16 - f32: {d:+.4f} nats/token")
    target("|val NLL bf16 - f32| (nats)", None if d is None else abs(d), "<=", 0.02)
    r = ratio(m("wick-bf16", "wall"), m("wick-f32", "wall"))
    if r is not None:
        print(f"  {'wall time bf16 / f32':<44} {r:7.2f}   (for reference: whole runs, evaluations included)")


def section_c(m, kv):
    print(f"== c. memory: small preset at seq {kv['T']}, batch {kv['B']}, precision {kv['precision']}, "
          f"{kv['steps']} steps a run (ms/step: median of steps 6..): median over {kv['runs']} runs ==")
    print(f"  {'':<18} {'ms/step':>10} {'peak RSS MiB':>13}")
    for label in ("wick", "wick-ckpt", "torch", "torch-ckpt"):
        if m.n(label):
            print(f"  {label:<18} {fmt(m(label, 'ms'), '10.1f')} {fmt(mib(m(label, 'kb')), '13.0f')}")
    print("ratios, with --grad-checkpoint / without:")
    target("wick peak RSS", ratio(m("wick-ckpt", "kb"), m("wick", "kb")), "<=", 0.5)
    target("wick step time", ratio(m("wick-ckpt", "ms"), m("wick", "ms")), "<=", 1.4)
    for what, key in (("peak RSS", "kb"), ("step time", "ms")):
        r = ratio(m("torch-ckpt", key), m("torch", key))
        if r is not None:
            print(f"  {'torch ' + what:<44} {r:7.2f}   (for reference)")
    for what, key in (("step time", "ms"), ("peak RSS", "kb")):
        r = ratio(m("wick-ckpt", key), m("torch-ckpt", key))
        if r is not None:
            print(f"  {'wick / torch, both checkpointed, ' + what:<44} {r:7.2f}   (for reference)")
    print("  (peak RSS is the whole process: for torch the Python interpreter and the torch "
          "libraries, ~0.3-0.5 GiB, are in both figures)")


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def section_d(m, kv):
    print(f"== d. ppl and generate: the small preset's random model (f32 folder), ppl seq "
          f"{kv['T']} batch {kv['B']} on the val split, generate {kv['prompts']} prompts x "
          f"{kv['new']} greedy tokens; medians of {kv['runs']} runs ==")
    print(f"  {'':<22} {'tokens/s':>10} {'steady':>10} {'nll':>9} {'wall s':>8} {'peak RSS MiB':>13}")
    for label in ("wick-ppl-bf16", "wick-ppl-f32", "hf-ppl-bf16", "wick-gen-bf16", "wick-gen-f32",
                  "hf-gen-bf16"):
        if m.n(label):
            steady = m(label, "steady") if "ppl" in label else m(label, "own")
            print(f"  {label:<22} {fmt(m(label, 'tps'), '10.1f')} {fmt(steady, '10.1f')} "
                  f"{fmt(m(label, 'nll'), '9.4f')} {fmt(m(label, 'wall'), '8.2f')} "
                  f"{fmt(mib(m(label, 'kb')), '13.0f')}")
    print("  (wick ppl: its own tokens_per_s over every batch, steady = after the first batch; "
          "transformers ppl: the timed batches after an untimed warm-up one. wick generate: "
          "prompts x new tokens / wall of the whole command, model load included, steady = its "
          "own stderr figure, load left out; transformers generate: the model.generate calls "
          "only, as bench_eval.sh times them)")
    print("ratios (tokens/s; above 1 = wick faster):")
    target("ppl: wick bf16 / transformers bf16", ratio(m("wick-ppl-bf16", "tps"), m("hf-ppl-bf16", "tps")),
           ">=", 1.5)
    r = ratio(m("wick-ppl-bf16", "steady"), m("hf-ppl-bf16", "tps"))
    if r is not None:
        print(f"  {'  after wick first batch':<44} {r:7.2f}")
    target("generate: wick bf16 / transformers bf16",
           ratio(m("wick-gen-bf16", "tps"), m("hf-gen-bf16", "tps")), ">=", 2.0)
    target("generate: wick bf16 / wick f32",
           ratio(m("wick-gen-bf16", "tps"), m("wick-gen-f32", "tps")), ">=", 1.7, "(whole command)")
    target("  the same, load left out (generate's own)",
           ratio(m("wick-gen-bf16", "own"), m("wick-gen-f32", "own")), ">=", 1.7)
    r = ratio(m("wick-ppl-bf16", "tps"), m("wick-ppl-f32", "tps"))
    if r is not None:
        print(f"  {'ppl: wick bf16 / wick f32':<44} {r:7.2f}   (for reference)")
    wb, wf, hb = m("wick-ppl-bf16", "nll"), m("wick-ppl-f32", "nll"), m("hf-ppl-bf16", "nll")
    if wb is not None and hb is not None:
        print(f"  nll: wick bf16 - transformers bf16 {wb - hb:+.5f}"
              + ("" if wf is None else f"; wick bf16 - wick f32 {wb - wf:+.5f}"))
    if kv.get("wick_gen") and kv.get("hf_gen"):
        try:
            w = [json.loads(x) for x in open(kv["wick_gen"]) if x.strip()]
            h = [json.loads(x) for x in open(kv["hf_gen"]) if x.strip()]
        except OSError:
            return
        pairs = [(a.get("ids", a.get("response_ids")), b["ids"]) for a, b in zip(w, h)]
        same = sum(first_diff(a, b) is None for a, b in pairs)
        firsts = [first_diff(a, b) for a, b in pairs]
        firsts = ["=" if f is None else str(f) for f in firsts]
        print(f"  greedy ids, wick bf16 vs transformers bf16: {same} of {len(pairs)} prompts "
              f"identical; first differing position per prompt: {' '.join(firsts)} "
              f"(bf16 roundings differ, so near-ties may go either way)")


def section_e(m, kv):
    print(f"== e. LoRA SFT step on a SmolLM2-135M-shaped Llama (random {kv['base']} weights), batch "
          f"{kv['B']} x {kv['T']}, r {kv['r']} alpha {kv['alpha']} on {kv['targets']}, bf16 "
          f"autocast + gradient checkpointing; medians of {kv['runs']} runs (steps 6..{kv['steps']}) ==")
    print(f"  {'':<24} {'ms/step':>10} {'peak RSS MiB':>13}")
    labels = [l for l in m.runs if l.startswith("wick")] + sorted(l for l in m.runs if l.startswith("torch"))
    for label in labels:
        print(f"  {label:<24} {fmt(m(label, 'ms'), '10.1f')} {fmt(mib(m(label, 'kb')), '13.0f')}")
    for label in labels:
        if label.startswith("torch"):
            for what, key in (("step time", "ms"), ("peak RSS", "kb")):
                r = ratio(m("wick-lora", key), m(label, key))
                if r is not None:
                    print(f"  {'wick / ' + label + ', ' + what:<44} {r:7.2f}")
    print("  (torch-lora-<dtype>: the frozen base loaded in that dtype; LoRA A/B and AdamW f32 on "
          "both sides; peak RSS is the whole process)")


def main():
    section, path = sys.argv[1], sys.argv[2]
    kv = dict(a.split("=", 1) for a in sys.argv[3:])
    m = Med(load(path, section))
    print()
    {"a": section_a, "b": section_b, "c": section_c, "d": section_d, "e": section_e}[section](m, kv)


if __name__ == "__main__":
    main()
