"""Offline reading comprehension: generated biographies, and questions answered by a span.

A passage tells of 2-3 people (two-word names, often sharing a first or a last name) in
short sentences, shuffled together; each person gets some of five kinds of fact:

    born     "anna kolar was born in tavik in march 1843 ."   (or "... in march 1843 in tavik .")
    moved    "anna kolar moved to dunmore in 1861 ."          (or "in 1861 anna kolar moved ...")
    worked   "anna kolar worked as a baker in dunmore ."      (often where she moved to)
    founded  "anna kolar founded the library in 1870 ."       (or "in 1870 anna kolar founded ...")
    met      "anna kolar met bela kolar in tavik ."

A few facts (`retold`) are told twice, in a second sentence anywhere in the passage, as
texts repeat themselves; masked-LM pretraining on the passages then has to find the other
telling of a fact to fill a masked word, the look-up a question needs.

A question asks for one slot of one fact ("where was anna kolar born ?" -> "tavik", "when was
anna kolar born ?" -> "march 1843", "what did anna kolar work as ?" -> "a baker", "who founded
the library ?" -> "anna kolar", ...). Every person has facts of the same kinds and every
kind has places or years, so the answer is in the one sentence that matches both the name
and the relation, among distractors of the same type. Example i is a deterministic function
of (seed, split, i); names and places are pseudo-words fixed by `language_seed`.

`reading_comprehension` gives the windows of `dl_arch.data.sources.squad` (the answer's
token span in each window); `synthetic_passages` gives the same passages unlabelled,
`[CLS] passage [SEP]` cut to `max_len`, for masked-LM pretraining of the encoder that the
QA fine-tuning then loads: both share one word vocabulary (`passage_vocab_size`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field, Fields
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.sources.squad import WINDOW_FIELDS, WordOffsets, window_features
from dl_arch.data.tokenizers import BOS, EOS, SPECIALS, pad_to
from dl_arch.registry import register_dataset

FUNCTION_WORDS = ("the", "a", "an", "was", "born", "in", "moved", "to", "worked", "as",
                  "founded", "met", "who", "where", "when", "what", "did", "move", "work",
                  "found", "meet", ".", "?")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
YEARS = tuple(str(y) for y in range(1820, 1900))
JOBS = ("baker", "teacher", "miller", "doctor", "sailor", "painter", "weaver", "farmer",
        "clerk", "judge", "printer", "engineer", "artist", "architect", "tailor", "cook")
ORGS = ("school", "bank", "mill", "library", "theatre", "hospital", "museum", "newspaper",
        "choir", "brewery", "bakery", "orchestra", "college", "harbour", "market", "garden")
FACTS = ("born", "moved", "worked", "founded", "met")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ei", "au")
_CODAS = ("", "", "n", "r", "l", "k", "s")


class Lexicon:
    """The word lists of the passages: fixed English words plus pseudo-word names/places."""

    def __init__(self, language_seed: int, num_names: int, num_places: int):
        rng = np.random.default_rng([language_seed, 2604])
        taken = set(FUNCTION_WORDS + MONTHS + YEARS + JOBS + ORGS)

        def words(count: int) -> list[str]:
            out: list[str] = []
            while len(out) < count:
                w = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_VOWELS))
                            + str(rng.choice(_CODAS)) for _ in range(int(rng.integers(2, 4))))
                if w not in taken:
                    taken.add(w)
                    out.append(w)
            return out

        self.first, self.last, self.places = words(num_names), words(num_names), words(num_places)
        vocab = [*SPECIALS, *FUNCTION_WORDS, *MONTHS, *YEARS, *JOBS, *ORGS, *self.first,
                 *self.last, *self.places]
        self.tokenizer = WordOffsets({w: i for i, w in enumerate(vocab)}, BOS, EOS)
        self.vocab_size = len(vocab)


@functools.lru_cache(maxsize=4)
def lexicon(language_seed: int, num_names: int, num_places: int) -> Lexicon:
    return Lexicon(language_seed, num_names, num_places)


def passage_vocab_size(num_names: int = 40, num_places: int = 40) -> int:
    """The vocabulary of the passages (specials included), for `config.model.vocab_size`."""
    return lexicon(0, num_names, num_places).vocab_size


class Story:
    """One generated passage: its words, and where each fact's slots (answers) are."""

    def __init__(self, rng: np.random.Generator, lex: Lexicon, entities: tuple[int, int],
                 facts: tuple[int, int], shared_names: float, retold: int):
        k = int(rng.integers(entities[0], entities[1] + 1))
        first = [str(w) for w in rng.choice(lex.first, k, replace=False)]
        last = [str(w) for w in rng.choice(lex.last, k, replace=False)]
        if k > 1 and rng.random() < shared_names:  # siblings or namesakes: one name differs
            shared = last if rng.random() < 0.5 else first
            shared[1] = shared[0]
        self.people = [f"{f} {s}" for f, s in zip(first, last, strict=True)]
        orgs = [str(w) for w in rng.choice(ORGS, k, replace=False)]
        self.values: dict[tuple[int, str], dict[str, str]] = {}  # (person, fact) -> slots
        for e in range(k):
            chosen = rng.choice(len(FACTS), int(rng.integers(facts[0], facts[1] + 1)),
                                replace=False)
            for fact in (FACTS[i] for i in sorted(chosen)):  # "moved" is drawn before "worked"
                self.values[(e, fact)] = self._draw(rng, lex, e, fact, orgs[e])
        self.facts = list(self.values)
        told = self.facts + [self.facts[int(i)] for i in
                             rng.choice(len(self.facts), min(retold, len(self.facts)),
                                        replace=False)]
        order = rng.permutation(len(told))
        self.words: list[str] = []
        # (person, fact, slot) -> the slot's word span in each telling, in passage order
        self.slots: dict[tuple[int, str, str], list[tuple[int, int]]] = {}
        for i in order:
            e, fact = told[int(i)]
            for text, slot in self._render(e, fact, rng.random() < 0.5):
                n = len(text.split())
                if slot:
                    span = (len(self.words), len(self.words) + n - 1)
                    self.slots.setdefault((e, fact, slot), []).append(span)
                self.words += text.split()

    def _draw(self, rng: np.random.Generator, lex: Lexicon, e: int, fact: str, org: str
              ) -> dict[str, str]:
        """The slot values of one fact about person e."""
        place, year = str(rng.choice(lex.places)), str(rng.choice(YEARS))
        if fact == "born":
            return {"place": place, "time": f"{rng.choice(MONTHS)} {rng.choice(YEARS)}"}
        if fact == "moved":
            return {"place": place, "time": year}
        if fact == "worked":
            if (e, "moved") in self.values and rng.random() < 0.5:  # where they moved to
                place = self.values[(e, "moved")]["place"]
            job = str(rng.choice(JOBS))
            return {"job": f"{'an' if job[0] in 'aeiou' else 'a'} {job}", "place": place}
        if fact == "founded":
            return {"org": org, "time": year, "who": self.people[e]}
        others = [p for i, p in enumerate(self.people) if i != e]
        if not others or rng.random() < 0.3:
            others = [f"{rng.choice(lex.first)} {rng.choice(lex.last)}"]
        return {"whom": str(rng.choice(others)), "place": place}

    def _render(self, e: int, fact: str, front: bool) -> list[tuple[str, str]]:
        """(text, slot name or '') parts of the sentence telling one fact; `front` puts the
        time phrase first (or, for a birth, the date before the place)."""
        v = self.values[(e, fact)]
        name = (self.people[e], "")
        place, time = ((v[k], k) if k in v else ("", "") for k in ("place", "time"))
        if fact == "born":
            tail = [("in", ""), time, ("in", ""), place] if front else \
                [("in", ""), place, ("in", ""), time]
            return [name, ("was born", ""), *tail, (".", "")]
        if fact == "moved":
            if front:
                return [("in", ""), time, name, ("moved to", ""), place, (".", "")]
            return [name, ("moved to", ""), place, ("in", ""), time, (".", "")]
        if fact == "worked":
            return [name, ("worked as", ""), (v["job"], "job"), ("in", ""), place, (".", "")]
        if fact == "founded":
            body = [(v["who"], "who"), ("founded the", ""), (v["org"], "org")]
            if front:
                return [("in", ""), time, *body, (".", "")]
            return [*body, ("in", ""), time, (".", "")]
        return [name, ("met", ""), (v["whom"], "whom"), ("in", ""), place, (".", "")]

    def question(self, rng: np.random.Generator
                 ) -> tuple[str, list[tuple[int, int]], str]:
        """(question, the answer's word span in each telling (first telling first), answer
        text) about one random fact of the story."""
        e, fact = self.facts[int(rng.integers(len(self.facts)))]
        v, who = self.values[(e, fact)], self.people[e]
        asks = {"born": [("where was {who} born ?", "place"), ("when was {who} born ?", "time")],
                "moved": [("where did {who} move to ?", "place"),
                          ("when did {who} move ?", "time")],
                "worked": [("what did {who} work as ?", "job"),
                           ("where did {who} work ?", "place")],
                "founded": [("what did {who} found ?", "org"),
                            ("when did {who} found the {org} ?", "time"),
                            ("who founded the {org} ?", "who")],
                "met": [("who did {who} meet ?", "whom"),
                        ("where did {who} meet {whom} ?", "place")]}[fact]
        template, slot = asks[int(rng.integers(len(asks)))]
        text = template.format(**{**v, "who": who})
        spans = self.slots[(e, fact, slot)]
        answer = " ".join(self.words[spans[0][0]: spans[0][1] + 1])
        if slot == "org":  # "what did X found ?" -> "the library"
            spans, answer = [(a - 1, b) for a, b in spans], f"the {answer}"
        return text, spans, answer


STORY_FIELDS: Fields = {
    "language_seed": Field(0, "seed of the names and places (another seed: other words)"),
    "num_names": Field(40, "first names, and as many last names", low=3),
    "num_places": Field(40, "place names", low=2),
    "min_people": Field(2, "fewest people in a passage", low=1),
    "max_people": Field(3, "most people in a passage", low=1),
    "min_facts": Field(2, "fewest facts told of each person", low=1, high=len(FACTS)),
    "max_facts": Field(3, "most facts told of each person", low=1, high=len(FACTS)),
    "shared_names": Field(0.4, "chance that two people of a passage share their first or "
                               "their last name", low=0.0, high=1.0),
    "retold": Field(1, "facts told twice in a passage (in another sentence)", low=0),
}


def _story_settings(cfg: Any) -> dict[str, Any]:
    """The `Story` arguments a dataset config describes."""
    if cfg.min_people > cfg.max_people or cfg.min_facts > cfg.max_facts:
        raise ConfigError(f"config.dataset: min_people={cfg.min_people} / min_facts="
                          f"{cfg.min_facts} exceed max_people={cfg.max_people} / max_facts="
                          f"{cfg.max_facts}; make each min <= its max")
    if cfg.max_people > min(cfg.num_names, len(ORGS)):
        raise ConfigError(f"config.dataset.max_people={cfg.max_people} exceeds the names "
                          f"(num_names={cfg.num_names}) or organisations ({len(ORGS)}); lower it")
    return dict(lex=lexicon(cfg.language_seed, cfg.num_names, cfg.num_places),
                entities=(cfg.min_people, cfg.max_people), facts=(cfg.min_facts, cfg.max_facts),
                shared_names=float(cfg.shared_names), retold=int(cfg.retold))


class ReadingComprehension(ProceduralSource):
    """Example i: the windows of (story i's question, its passage), answer span marked."""

    def __init__(self, cfg: Any, split: str, seed: int):
        super().__init__(split_length(cfg, split), seed, split)
        self.cfg = cfg
        self.story_args = _story_settings(cfg)
        self.lex = self.story_args["lex"]

    def story(self, index: int) -> tuple[str, str, list[tuple[int, int]], str]:
        """(passage, question, answer word span in each telling, answer) of example `index`."""
        rng = np.random.default_rng([self._seed, self._salt, int(index)])
        return self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> tuple[str, str, list[tuple[int, int]], str]:
        story = Story(rng, **self.story_args)
        question, spans, answer = story.question(rng)
        return " ".join(story.words), question, spans, answer

    def reference(self, index: int) -> tuple[str, str, list[str]]:
        """(passage, question, [answer]) of example `index`."""
        passage, question, _, answer = self.story(index)
        return passage, question, [answer]

    def featurize(self, passage: str, question: str) -> dict[str, Any]:
        """The windows of a new (passage, question) in these words, no answer marked."""
        tok = self.lex.tokenizer
        ids, offsets = tok.encode(passage)
        return window_features(tok.encode(question)[0], ids, offsets, (-1, -1), tok.cls_id,
                               tok.sep_id, self.cfg, 0)

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        passage, question, spans, _ = self._draw(rng)
        tok = self.lex.tokenizer
        ids, offsets = tok.encode(passage)
        return window_features(tok.encode(question)[0], ids, offsets, spans[0], tok.cls_id,
                               tok.sep_id, self.cfg, index, retellings=spans[1:])


@register_dataset("reading_comprehension", fields={
    **STORY_FIELDS, **WINDOW_FIELDS,
    "max_len": Field(64, "tokens per window: [CLS] question [SEP] passage piece [SEP]", low=8),
    "doc_stride": Field(24, "passage tokens between the starts of consecutive windows", low=1),
    "max_query_len": Field(12, "question tokens kept (the rest is cut)", low=1),
    "max_context_len": Field(128, "passage tokens kept before windowing", low=1),
    **SPLIT_FIELDS})
def reading_comprehension(cfg: Any, split: str, seed: int) -> ReadingComprehension:
    """Offline extractive QA over generated biographies (see the module docstring)."""
    return ReadingComprehension(cfg, split, seed)


class SyntheticPassages(ProceduralSource):
    """Example i: {inputs: [CLS] passage [SEP] (cut to max_len, zero padded)}."""

    def __init__(self, cfg: Any, split: str, seed: int):
        super().__init__(split_length(cfg, split), seed, split)
        self.story_args = _story_settings(cfg)
        self.lex = self.story_args["lex"]
        self.max_len = int(cfg.max_len)

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        story = Story(rng, **self.story_args)
        ids = self.lex.tokenizer.encode(" ".join(story.words))[0][: self.max_len - 2]
        return {"inputs": pad_to([BOS, *ids, EOS], self.max_len)}


@register_dataset("synthetic_passages", fields={
    **STORY_FIELDS,
    "max_len": Field(64, "tokens per example, [CLS] and [SEP] included (cut, zero padded)",
                     low=3),
    **SPLIT_FIELDS})
def synthetic_passages(cfg: Any, split: str, seed: int) -> SyntheticPassages:
    """The passages of `reading_comprehension`, unlabelled, for masked-LM pretraining."""
    return SyntheticPassages(cfg, split, seed)
