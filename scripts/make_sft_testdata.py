#!/usr/bin/env python3
"""Builds testdata/sft/, a small real supervised fine-tuning (SFT) task, from testdata/raw/.

Standard library only, deterministic (no randomness, no clock): the same sources give the same
bytes. Run once from anywhere (paths are relative to this script); its output is committed:

    python3 scripts/make_sft_testdata.py [--zh-max-chars 32] [--out testdata/sft]

Records are JSON lines `{"id", "prompt", "completion"}`, the prompt/completion format `tokenize`
renders as prompt (not trained on) + completion + EOS (trained on). Two kinds:

Chinese (`songci/<index in songci300.json>`), from raw/zh/songci300.json (宋词三百首, 280 ci,
chinese-poetry 2.0.1, MIT (c) 2016 JackeyGao): prompt = "写一首《<rhythmic>》\\n", completion = the
ci's opening lines: as many whole `paragraphs` lines, from the first, as fit in --zh-max-chars
characters (default 32; at least one line even if it alone is longer; 0 = the whole poem), joined
with no separator (each line already ends in punctuation). Why 32: the demo's models have a
64-token context and a whole ci (median 118 characters) does not fit. `rhythmic` is copied as is
(36 carry a second name after U+30FB "・", e.g. 木兰花・玉楼春).

English (`<play>/<speech index>/<window>`), from raw/shakespeare/{hamlet,macbeth,tempest,
midsummer_nights_dream}_gut.txt (Project Gutenberg, modern spelling; public domain): "continue
this speech". prompt = "Continue this speech:\\n" + 2 lines of a speech
joined by "\\n" + "\\n", completion = the next 2 lines joined by "\\n". A speech is the lines spoken
by one character between speaker headings; how the plays are parsed:
  * Only the text after the first "ACT" line is read (the cast lists are all-caps names too).
    Lines starting with ACT / SCENE / Scene / EPILOGUE end the current speech and are dropped.
  * Stage directions are everything inside [...] (also across lines, and inline: "[Aside] I
    must obey." keeps "I must obey."; the spaces a removal leaves before punctuation or after
    "--" go too). Three source typos are fixed first (FIXES), all in The Tempest:
    "{To FERDINAND]" is read as "[To FERDINAND]"; "[Enter certain Reapers ... they join]",
    whose "]" comes a line early, is closed at the right place; in "kiss the book [gives
    \nTRINCULO a drink]. Though" the "." that would start a line goes back after "book". A
    "[" still open at a blank line is closed there (Macbeth V.8 "[Retreat. Flourish. Enter ..."
    never closes). A line left with no letters ("[Throws up another skull].") counts as a
    direction.
  * Speaker headings: Hamlet writes abbreviations ("Ham.", "1 Clown.", "P. King.",
    "Oph. [Sings.]") on their own line after a blank line; they are looked up in HAMLET_NAMES
    (all of the play's headings; "King."/"Queen." become Claudius/Gertrude). Macbeth, The
    Tempest and A Midsummer Night's Dream write the name in capitals on its own unindented line,
    with or without a final "." ("LADY MACBETH.", "THESEUS", "APPARITION.--"; once
    "ANTONIO. Draw together:" with the speech on the same line); shown title-cased.
  * Group headings (All, Both, Lords, Danes, "Mar. and Ber.", "FERDINAND, MIRANDA", ...) start a
    speech that gives no records. "SONG" / "Song." / "CHORUS" and indented stanza numbers
    ("I.", "II.") in the songs end the current speech and start an unattributed one (no records).
    A stage direction naming who sings or speaks ("[ARIEL'S SONG.]", "[ARIEL sings]", "[Spoken by
    PROSPERO]") hands the following lines to that character.
  * Speech lines are stripped of indentation (shared verse lines, songs) and runs of spaces.
    A stage-direction-only line or a blank line inside a speech splits it into segments;
    windows never cross a segment boundary.
Windows are 4 consecutive lines of one speech segment, the record kept when prompt +
completion is at most --en-max-chars characters (default 170), meant to fit a 64-token context
with a 4096-token BPE tokenizer. That is approximate: with the tokenizer `make demo` trains
(wick `tokenize train --vocab-size 4096` on the cleaned english.jsonl + chinese.jsonl), 14 of
the 635 records come to more than 65 tokens with EOS (at most 74; `train --task sft` cuts them
to fit). Windows are taken greedily and
never overlap: from the segment's first line, a window that fits is kept and the next one starts
after it, one that does not fit moves the start on by one line. <window> in the id is the line
offset of the window's first line in the speech (segments counted one after another), e.g.
hamlet/12/0, hamlet/12/4. At most --en-max-records (default 1,200) are kept, spread evenly over
the four plays (an equal quota each, a play with fewer eligible windows gives the rest to the
others) and within a play evenly over its eligible windows in source order. A window with a
line in capitals only is skipped (Hamlet's signature "HAMLET.'" under his letter to Ophelia
reads like a speaker heading).

Split: a record is held out when the first byte of md5(key) is below 26 (~10%), key = the id for
Chinese (for a poem whose text repeats an earlier one's, that one's id: songci/18 and songci/266
are copies of songci/16 and songci/262 under another author) and the speech, "<play>/<speech
index>", for English, so that a held-out prompt is never a continuation of a training one.
Writes <out>/train.jsonl and <out>/heldout.jsonl (Chinese then English, each in source order)
and prints the counts and length statistics.
"""
import argparse
import hashlib
import json
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "testdata" / "raw"

PLAYS = [  # (id, file, title, heading style)
    ("hamlet", "hamlet_gut.txt", "Hamlet", "abbrev"),
    ("macbeth", "macbeth_gut.txt", "Macbeth", "caps"),
    ("tempest", "tempest_gut.txt", "The Tempest", "caps"),
    ("midsummer", "midsummer_nights_dream_gut.txt", "A Midsummer Night's Dream", "caps"),
]

# Every speaker heading of hamlet_gut.txt -> the name used in prompts (None: a group, no records).
HAMLET_NAMES = {
    "Ham.": "Hamlet", "Hor.": "Horatio", "King.": "Claudius", "Queen.": "Gertrude",
    "Pol.": "Polonius", "Laer.": "Laertes", "Oph.": "Ophelia", "Ros.": "Rosencrantz",
    "Guil.": "Guildenstern", "Mar.": "Marcellus", "Ber.": "Bernardo", "Fran.": "Francisco",
    "Osr.": "Osric", "Ghost.": "Ghost", "Rey.": "Reynaldo", "1 Clown.": "First Clown",
    "2 Clown.": "Second Clown", "Capt.": "Captain", "I Play.": "First Player",
    "I Player.": "First Player", "P. King.": "Player King", "P. Queen.": "Player Queen",
    "Pro.": "Prologue", "Luc.": "Lucianus", "Fort.": "Fortinbras", "For.": "Fortinbras",
    "Gent.": "Gentleman", "Lord.": "Lord", "Mess.": "Messenger", "1 Priest.": "Priest",
    "Volt.": "Voltimand", "Servant.": "Servant", "Sailor.": "Sailor", "I Sailor.": "Sailor",
    "1 Ambassador.": "Ambassador",
    "All.": None, "Both.": None, "Danes.": None, "Mar. and Ber.": None, "Hor. and Mar.": None,
    "Ros. and Guil.": None, "Ros and Guil.": None, "Ros. and Guild.": None,
    "Cor. and Volt.": None, "Osric and Lords.": None,
}
CAPS_GROUPS = {"ALL", "BOTH", "BOTH MURDERERS", "LORDS", "SOLDIERS", "MARINERS"}

# Known typos of the sources, fixed before parsing: (file, wrong, right).
FIXES = [
    ("tempest_gut.txt", "{To FERDINAND]", "[To FERDINAND]"),
    ("tempest_gut.txt", "they join]\nwith the Nymphs", "they join\nwith the Nymphs"),
    ("tempest_gut.txt", "kiss the book [gives\nTRINCULO a drink]. Though",
     "kiss the book. [gives TRINCULO a drink]\nThough"),
]

CAPS_HEADING = re.compile(r"^([A-Z][A-Z']+(?:,? [A-Z][A-Z']+)*)(?:\.|\.--)?$")
CAPS_INLINE = re.compile(r"^([A-Z][A-Z']+(?: [A-Z][A-Z']+)*)\. +(\S.*)$")
RESET = re.compile(r"^(ACT|SCENE|Scene|EPILOGUE)\b")
PSEUDO = re.compile(r"^(?:\s*(?:SONG\.?|Song\.|CHORUS\.?)|\s+[IVX]+\.)$")
SHOUT = re.compile(r"[A-Z]{3}")  # with no lower case: a line that reads like a heading
HANDOVER = re.compile(r"^(?:([A-Z]{2,})'S SONG\.?|([A-Z]{2,}) sings\.?|Spoken by ([A-Z]{2,}))$")


def held_out(key):
    return hashlib.md5(key.encode("utf-8")).digest()[0] < 26


def strip_directions(text):
    """Removes the [...] stage directions. -> one (raw line, line, kind, directions) per line:
    kind "text" (something left), "dir" (only directions) or "blank"; directions = the texts
    of the directions that end on this line (for HANDOVER)."""
    rows, depth, pending = [], 0, []
    for raw in text.split("\n"):
        if depth and not raw.strip():
            depth, pending = 0, []  # an unclosed "[" ends at the paragraph
        kept, ended, had_dir = [], [], depth > 0
        for ch in raw:
            if ch == "[":
                depth, had_dir = depth + 1, True
            elif ch == "]" and depth:
                depth -= 1
                if not depth:
                    ended.append(" ".join("".join(pending).split()))
                    pending = []
            elif depth:
                pending.append(ch)
            else:
                kept.append(ch)
        pending.append(" ")
        line = "".join(kept).rstrip()
        if had_dir:  # "friends [to Ros.], I'll" -> "friends, I'll"; ".--[To X] Come" -> ".--Come"
            line = re.sub(r"(?<=\S) +(?=[,;:.!?])|(?<=--) +", "", line)
            if not re.search(r"\w", line):  # "[Throws up another skull]." leaves "."
                line = ""
        kind = "text" if line.strip() else "dir" if had_dir else "blank"
        rows.append((raw, line, kind, ended))
    return rows


def parse_play(fname, text, style):
    """-> list of speeches [speaker or None, [segment [line]]] in source order."""
    for f, wrong, right in FIXES:
        if f == fname:
            assert text.count(wrong) == 1, (fname, wrong)
            text = text.replace(wrong, right)
    rows = strip_directions(text)
    start = next(i for i, r in enumerate(rows) if r[0].startswith("ACT"))
    rows = rows[start:]
    caps_names = set()
    if style == "caps":  # the full-line headings, to recognise "ANTONIO. Draw together:"
        for raw, line, kind, _ in rows:
            m = CAPS_HEADING.match(line)
            if kind == "text" and m and not raw[0].isspace() and not RESET.match(line):
                caps_names.add(m.group(1))
    speeches, segs = [], None  # segs: the current speech's segments (None: no speech)

    def begin(who):
        nonlocal segs
        segs = [[]]
        speeches.append([who, segs])

    def brk():
        if segs is not None and segs[-1]:
            segs.append([])

    prev_kind = "blank"
    for i, (raw, line, kind, dirs) in enumerate(rows):
        nxt = rows[i + 1][2] if i + 1 < len(rows) else "blank"
        if kind != "text":
            brk()
            for d in dirs:
                m = HANDOVER.match(d)
                if m and style == "caps":
                    begin(next(g for g in m.groups() if g).title())
            prev_kind = kind
            continue
        if RESET.match(line):
            segs = None
            prev_kind = kind
            continue
        if PSEUDO.match(line):
            begin(None)
            prev_kind = kind
            continue
        heading, rest = None, None
        if style == "abbrev":
            key = line.strip()
            if prev_kind != "text" and key in HAMLET_NAMES and nxt != "blank":
                heading = key
        else:
            m, mi = CAPS_HEADING.match(line), CAPS_INLINE.match(line)
            if m and not raw[0].isspace() and nxt != "blank":
                heading = m.group(1)
            elif mi and mi.group(1) in caps_names:
                heading, rest = mi.group(1), mi.group(2)
        if heading is not None:
            if style == "abbrev":
                who = HAMLET_NAMES[heading]
            elif "," in heading or " AND " in heading or heading in CAPS_GROUPS:
                who = None
            else:
                who = heading.title()
            begin(who)
            if rest:
                segs[-1].append(rest)
        elif segs is not None:
            segs[-1].append(" ".join(line.split()))
        prev_kind = kind
    return speeches


def english(max_chars, max_records):
    per_play = []
    for pid, fname, title, style in PLAYS:
        text = (RAW / "shakespeare" / fname).read_text(encoding="utf-8")
        eligible = []
        for si, (who, segs) in enumerate(parse_play(fname, text, style)):
            if who is None:
                continue
            base = 0  # line offset of the segment in the speech
            for seg in segs:
                k = 0
                while k + 4 <= len(seg):
                    lines = seg[k:k + 4]
                    head = "Continue this speech:\n"
                    prompt = head + "\n".join(lines[:2]) + "\n"
                    completion = "\n".join(lines[2:])
                    if len(prompt) + len(completion) <= max_chars and not any(
                            SHOUT.search(x) and not re.search("[a-z]", x) for x in lines):
                        eligible.append({"id": f"{pid}/{si}/{base + k}", "prompt": prompt,
                                         "completion": completion, "_key": f"{pid}/{si}"})
                        k += 4
                    else:
                        k += 1
                base += len(seg)
        per_play.append(eligible)
    # equal quotas; what a short play cannot use goes to the others
    quota, left = [0] * len(per_play), max_records
    open_ = [i for i in range(len(per_play))]
    while left > 0 and open_:
        share = max(1, left // len(open_))
        for i in list(open_):
            take = min(share, len(per_play[i]) - quota[i], left)
            quota[i] += take
            left -= take
            if quota[i] == len(per_play[i]):
                open_.remove(i)
            if left == 0:
                break
    out = []
    for eligible, q in zip(per_play, quota):
        n = len(eligible)
        out += [eligible[j * n // q] for j in range(q)]
    return out, [len(e) for e in per_play]


def chinese(max_chars):
    poems = json.loads((RAW / "zh" / "songci300.json").read_text(encoding="utf-8"))
    out, first = [], {}
    for i, ci in enumerate(poems):
        # split key: the id of the first poem with the same text (16 = 18 and 262 = 266 are
        # the same poem under two authors), so that a copy is never held out against itself
        key = f"songci/{first.setdefault(tuple(ci['paragraphs']), i)}"
        lines = ci["paragraphs"]
        take = lines[:1]
        for line in lines[1:]:
            if max_chars and len("".join(take)) + len(line) > max_chars:
                break
            take.append(line)
        if not max_chars:
            take = lines
        out.append({"id": f"songci/{i}", "prompt": f"写一首《{ci['rhythmic']}》\n",
                    "completion": "".join(take), "_key": key})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zh-max-chars", type=int, default=32,
                    help="Chinese completion: whole lines up to this many characters "
                    "(0 = whole poem)")
    ap.add_argument("--en-max-chars", type=int, default=170,
                    help="English: keep a window when prompt + completion has at most "
                    "this many characters")
    ap.add_argument("--en-max-records", type=int, default=1200)
    ap.add_argument("--out", type=Path, default=ROOT / "testdata" / "sft")
    args = ap.parse_args()

    zh = chinese(args.zh_max_chars)
    en, eligible = english(args.en_max_chars, args.en_max_records)
    for r in zh + en:
        assert r["prompt"].strip() and r["completion"].strip(), r
        assert not re.search(r"[\[\]{}]", r["prompt"] + r["completion"]), r
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "heldout": []}
    for r in zh + en:
        splits["heldout" if held_out(r["_key"]) else "train"].append(r)
    for name, recs in splits.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for r in recs:
                rec = {"id": r["id"], "prompt": r["prompt"], "completion": r["completion"]}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print("english eligible windows per play:",
          dict(zip([p[0] for p in PLAYS], eligible)))
    for lang, recs in (("zh", zh), ("en", en)):
        n_held = sum(held_out(r["_key"]) for r in recs)
        chars = [len(r["prompt"]) + len(r["completion"]) for r in recs]
        comp = [len(r["completion"]) for r in recs]
        print(f"{lang}: {len(recs)} records, train {len(recs) - n_held}, heldout {n_held}; "
              f"record chars median {statistics.median(chars)} max {max(chars)}; "
              f"completion chars median {statistics.median(comp)} max {max(comp)}")
    if en:
        by_play = {}
        for r in en:
            p = r["id"].split("/")[0]
            by_play.setdefault(p, [0, 0])[held_out(r["_key"])] += 1
        print("en per play [train, heldout]:", by_play)
    for name, recs in splits.items():
        print(f"{name}.jsonl: {len(recs)} records")


if __name__ == "__main__":
    main()
