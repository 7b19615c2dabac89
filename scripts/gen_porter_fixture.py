#!/usr/bin/env python3
"""Writes testdata/fixtures/eval/porter.tsv: reference stems from NLTK's Porter stemmer.

Each line is `word<TAB>stem` where stem = nltk.stem.porter.PorterStemmer().stem(word) (default mode
NLTK_EXTENSIONS), the stemmer rouge-score 0.1.2 uses with use_stemmer=True.

The words, sorted and distinct:
- every token rouge-score would stem in testdata/english.jsonl ("text"): lowercase the text, split
  on runs of [^a-z0-9], keep tokens longer than 3 characters (rouge_score.tokenize);
- hand-picked words: the examples of Porter's paper, NLTK's irregular forms and special cases,
  and words that exercise single rules;
- every combination of a few stems (measures 0 to 3, 'y' as consonant and vowel, double
  consonants, *o endings) with every suffix the rules know, short results included;
- a few words outside rouge-score's alphabet (uppercase, digits only, non-ASCII, 'y' runs),
  which the Rust port must also stem as NLTK does.

This script was run once, from the repository root, with nltk==3.10.4 (installed as a dependency
of rouge-score==0.1.2); its output is committed and the Rust tests need no Python.
  .venv/bin/python scripts/gen_porter_fixture.py
"""
import json
import re
from pathlib import Path

import nltk
from nltk.stem.porter import PorterStemmer

CORPUS = Path("testdata/english.jsonl")
OUT = Path("testdata/fixtures/eval/porter.tsv")

HAND_PICKED = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized
hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational
valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization
predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti
sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival
allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment
dependent adoption homologou communism activate angulariti homologous effective bowdlerize
probate rate cease controll roll generalizations generalization generalize general oscillators
oscillator oscillate hopefully generously generous
skies dying lying tying news innings inning outings outing cannings canning howe proceed exceed
succeed proceeding exceeding succeeded dies died flies fried spied tries tried cries cried lies
lied ties tied pies pied enjoy enjoyment spy fly try dry spying flying trying drying happiness
happily easily geology archaeology theology philology biology analogy logic logical
fulli carefully hopefully beautifully radically musically critically generally finally
sky skyline skying news newsy newspaper
agreement disagreed refereed guaranteed seed seeded need needed speed bleed breed greed
abate abated abating abatement plate plated hoped hoping hopped hopper tipping tipped
filled filling fizz fizzing buzzed buzzing missed missing passes passing classes
lying crying relying denying saying playing staying obeying buying toying
orrery oaten private troubles trees ivy oats trouble tree by
multidimensional conditionally rationalization nationalization nationalism nationally
sensational sensationalism operational operationally emotional emotionally
happening opening listening threatening beginning winning planning running swimming
university universal universe diversity adversity electricity publicity simplicity
alliance reliance compliance defiance ally rally tally sally bally
wholly fully jolly holly silly
"""

STEMS = [
    "", "b", "tr", "a", "ee", "tree", "y", "by", "ay", "toy", "syzyg", "oat", "hop", "fil",
    "troubl", "privat", "general", "condit", "electr", "sens", "geo", "arch", "happ", "abl",
    "conform", "radic", "hiss", "fizz", "tann", "contr", "w", "ow", "ax", "sk",
]
SUFFIXES = """
s ss sses ies ied eed ed ing y
ational tional enci anci izer bli abli alli entli eli ousli ization ation ator alism iveness
fulness ousness aliti iviti biliti fulli logi
icate ative alize iciti ical ful ness
al ance ence er ic able ible ant ement ment ent ion sion tion ou ism ate iti ous ive ize
e ll at bl iz ate ble ize
""".split()

ODD = [
    "Running", "SKIES", "Generalizations", "HAMLET", "McDonald", "1990s", "2024", "0000",
    "yyyy", "yyyyyy", "yyyyyyy", "ayyy", "byyyy", "a*ded", "r*ding",
    "café", "naïvely", "ΣΟΦΙΑΣ", "\u212aies", "straße", "fiancée", "résumés", "éclairs",
]


def corpus_tokens():
    tokens = set()
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"].lower()
            for tok in re.split(r"[^a-z0-9]+", text):
                if len(tok) > 3:
                    tokens.add(tok)
    return tokens


def main():
    assert nltk.__version__ == "3.10.4", nltk.__version__
    stemmer = PorterStemmer()
    words = corpus_tokens()
    n_corpus = len(words)
    words.update(HAND_PICKED.split())
    words.update(stem + suffix for stem in STEMS for suffix in SUFFIXES)
    words.update(ODD)
    words.discard("")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="\n") as f:
        for word in sorted(words):
            assert "\t" not in word and "\n" not in word
            f.write(f"{word}\t{stemmer.stem(word)}\n")
    print(f"{OUT}: {len(words)} words ({n_corpus} from {CORPUS})")


if __name__ == "__main__":
    main()
