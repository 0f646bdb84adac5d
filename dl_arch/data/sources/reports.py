"""Offline summarization: generated reports whose summary states the few facts that matter.

`reports` (no download): each example is a short news report of one `kind` (a football
match, a city's weather, a company's quarterly sales) and its reference summary in a fixed
short form, e.g.

    report:  it was a busy sunday of football across the league . harlow beat ...
             kelso welcomed orton on sunday . ... orton replied with 2 goals . ...
    summary: orton beat kelso 2 1 at riverside

A report is `lead_distractors` sentences that hold no summary fact, then the fact
sentences (each phrased by one of several templates) shuffled among `num_distractors`
more distractors, which mention other teams, cities, numbers and even sentences in the
summary's own form ("harlow beat selby 3 0 in the early game"). A model must select the
facts and compress them, deciding what no sentence states (who won, warmer or cooler,
sales rose or fell), so copying the first sentences (the lead baseline) scores poorly.
Example i depends only on (seed, split, i): {inputs, targets} = word ids + <eos>, zero
padded to `max_len` and `summary_len`; `tokenizer()` turns ids back into text for ROUGE.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from dl_arch.config.errors import ConfigError
from dl_arch.config.fields import Field
from dl_arch.data.sources.procedural import SPLIT_FIELDS, ProceduralSource, split_length
from dl_arch.data.tokenizers import EOS, WordTokenizer, pad_to
from dl_arch.registry import register_dataset

TEAMS = ("ashford", "brimley", "calder", "dunmore", "elston", "farrow", "glenby", "harlow",
         "irvine", "jarrow", "kelso", "larkin", "marlow", "newby", "orton", "pelham",
         "redcar", "selby", "thorne", "upton", "varley", "walden", "yarrow", "alford")
GROUNDS = ("riverside", "oakfield", "hillcrest", "meadowbank", "stonebridge", "highbury",
           "elmwood", "castlegate", "millfield", "parkhead")
PEOPLE = ("adams", "baker", "clark", "davies", "evans", "fisher", "green", "hughes",
          "irwin", "jones", "king", "lewis", "moore", "nash", "owen", "price")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "march", "may", "july", "september", "november")
CITIES = ("aberton", "bexford", "carrick", "dalby", "eskmouth", "fenwick", "garston",
          "halton", "ilkley", "kirkby", "lydford", "morley", "norbury", "pendle", "rydal",
          "stanton")
WEATHER = ("rain", "snow", "sunshine", "fog", "wind", "hail", "drizzle", "cloud")
FIRMS = ("acme", "borel", "corvan", "delmar", "evrex", "fulton", "gantry", "hexley",
         "ivory", "jolwen", "korda", "lumen", "maxton", "norden")
GOODS = ("phones", "bikes", "kettles", "lamps", "tyres", "chairs", "radios", "boots",
         "clocks", "heaters")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
NUMBERS = tuple(str(n) for n in range(100))

Facts = dict[str, str]


def _pick(rng: np.random.Generator, pool: tuple[str, ...], n: int) -> list[str]:
    """`n` distinct words of `pool`."""
    return [str(w) for w in rng.choice(pool, size=n, replace=False)]


def _num(rng: np.random.Generator, low: int, high: int) -> str:
    return str(int(rng.integers(low, high + 1)))


def _match(rng: np.random.Generator) -> Facts:
    home, away, o1, o2, o3 = _pick(rng, TEAMS, 5)
    hs, as_ = int(rng.integers(0, 5)), int(rng.integers(0, 5))
    winner = home if hs > as_ else away
    loser = away if hs > as_ else home
    x, y = sorted((int(v) for v in rng.choice(6, size=2, replace=False)), reverse=True)
    p1, p2, p3 = _pick(rng, PEOPLE, 3)
    ground, ground2 = _pick(rng, GROUNDS, 2)
    day, day2 = _pick(rng, DAYS, 2)
    facts = dict(home=home, away=away, hs=str(hs), as_=str(as_), ground=ground, ground2=ground2,
                 day=day, day2=day2, o1=o1, o2=o2, o3=o3, x=str(x), y=str(y), p1=p1, p2=p2,
                 p3=p3, crowd=_num(rng, 5, 60), m1=_num(rng, 1, 90), m2=_num(rng, 1, 90),
                 m3=_num(rng, 1, 9), pos=str(rng.choice(ORDINALS)), price=_num(rng, 10, 60))
    if hs == as_:
        facts["summary"] = f"{home} drew {hs} {as_} with {away} at {ground}"
    else:
        facts["summary"] = f"{winner} beat {loser} {max(hs, as_)} {min(hs, as_)} at {ground}"
    return facts


def _weather(rng: np.random.Generator) -> Facts:
    city, c2, c3 = _pick(rng, CITIES, 3)
    cond, cond2, cond3 = _pick(rng, WEATHER, 3)
    t = int(rng.integers(0, 31))
    t2 = int(rng.choice([v for v in range(0, 31) if abs(v - t) >= 2]))
    facts = dict(city=city, c2=c2, c3=c3, cond=cond, cond2=cond2, cond3=cond3, t=str(t),
                 t2=str(t2), t3=_num(rng, 0, 30), t4=_num(rng, 0, 30), t5=_num(rng, 20, 40),
                 month=str(rng.choice(MONTHS)), years=_num(rng, 2, 90), day=str(rng.choice(DAYS)))
    trend = "warmer" if t2 > t else "cooler"
    facts["summary"] = f"{city} {t} degrees with {cond} {trend} tomorrow"
    return facts


def _sales(rng: np.random.Generator) -> Facts:
    firm, f2, f3 = _pick(rng, FIRMS, 3)
    goods, goods2 = _pick(rng, GOODS, 2)
    n1, n0 = (int(v) for v in rng.choice(np.arange(10, 100), size=2, replace=False))
    facts = dict(firm=firm, f2=f2, f3=f3, goods=goods, goods2=goods2, n1=str(n1), n0=str(n0),
                 n2=_num(rng, 10, 99), n3=_num(rng, 1, 99), n4=_num(rng, 2, 20),
                 n5=_num(rng, 1, 50), person=str(rng.choice(PEOPLE)),
                 city=str(rng.choice(CITIES)), day=str(rng.choice(DAYS)),
                 month=str(rng.choice(MONTHS)))
    trend = "rose" if n1 > n0 else "fell"
    facts["summary"] = f"{firm} {goods} sales {trend} from {n0} to {n1} thousand"
    return facts


class Kind:
    """One kind of report: how its facts are drawn, the templates of each fact sentence (one
    chosen per report) and the distractor templates (`num_distractors` chosen per report)."""

    def __init__(self, draw: Callable[[np.random.Generator], Facts],
                 fact_templates: tuple[tuple[str, ...], ...], distractors: tuple[str, ...],
                 summary_template: str):
        self.draw, self.fact_templates, self.distractors = draw, fact_templates, distractors
        self.summary_template = summary_template  # the words of the summary, for the vocabulary


KINDS = {
    "match": Kind(_match, (
        ("{home} welcomed {away} on {day} .", "{away} were the visitors against {home} on {day} .",
         "{away} travelled to face {home} on {day} ."),
        ("the game was played at {ground} before {crowd} thousand fans .",
         "{ground} was the ground for the game ."),
        ("{home} scored {hs} goals .", "{home} found the net {hs} times ."),
        ("{away} replied with {as_} goals .", "{away} managed {as_} goals on the day ."),
    ), (
        "it was a busy {day2} of football across the league .",
        "{o1} beat {o2} {x} {y} in the early game .",
        "{p1} of {home} was booked after {m1} minutes .",
        "{p2} of {away} limped off after {m2} minutes .",
        "last season {home} finished {pos} in the table .",
        "next week {away} will meet {o3} at {ground2} .",
        "the referee {p3} added {m3} minutes at the end .",
        "tickets for the game cost {price} pounds .",
    ), "{team} beat drew with {team} {n} {n} at {ground}"),
    "weather": Kind(_weather, (
        ("in {city} the temperature reached {t} degrees today .",
         "{city} saw a high of {t} degrees today ."),
        ("most of {city} had {cond} through the afternoon .",
         "{cond} covered {city} for much of the day ."),
        ("tomorrow {city} should reach {t2} degrees .",
         "forecasters expect {t2} degrees in {city} tomorrow ."),
    ), (
        "here is the weather for {day} .",
        "in {c2} it reached {t3} degrees today .",
        "the {month} average for {city} is {t4} degrees .",
        "{c3} had {cond2} all day .",
        "the record for {city} is {t5} degrees set {years} years ago .",
        "farmers near {c3} hope for {cond3} next week .",
        "roads near {c2} were busy in the morning .",
        "the sea off {c2} was calm .",
    ), "{city} {n} degrees with {cond} warmer cooler tomorrow"),
    "sales": Kind(_sales, (
        ("{firm} sold {n1} thousand {goods} this quarter .",
         "sales of {goods} at {firm} came to {n1} thousand this quarter ."),
        ("a quarter earlier {firm} had sold {n0} thousand .",
         "in the previous quarter the figure at {firm} was {n0} thousand ."),
    ), (
        "the markets were quiet on {day} .",
        "rival {f2} sold {n2} thousand {goods2} .",
        "{firm} shares closed at {n3} pounds .",
        "the chief executive {person} spoke in {city} on {day} .",
        "{f2} plans to open {n4} new shops .",
        "analysts at {f3} expect a quiet {month} .",
        "{firm} employs {n5} thousand people .",
        "{f3} sold {n2} thousand {goods} last year .",
    ), "{firm} {goods} sales rose fell from {n} to {n} thousand"),
}


def _template_words(template: str) -> list[str]:
    return [w for w in template.split() if not w.startswith("{")]


@functools.lru_cache(maxsize=1)
def tokenizer() -> WordTokenizer:
    """The closed word vocabulary of every kind of report (and its summaries)."""
    words = set(TEAMS + GROUNDS + PEOPLE + DAYS + MONTHS + CITIES + WEATHER + FIRMS + GOODS
                + ORDINALS + NUMBERS)
    for kind in KINDS.values():
        for template in [t for ts in kind.fact_templates for t in ts] + list(kind.distractors):
            words.update(_template_words(template))
        words.update(_template_words(kind.summary_template))
    return WordTokenizer(sorted(words))


def _length(template: str) -> int:
    return len(template.split())  # every slot is one word


def longest_report(kind: Kind, num_distractors: int) -> int:
    """Words in the longest report of `kind` with `num_distractors` + lead distractors."""
    facts = sum(max(_length(t) for t in ts) for ts in kind.fact_templates)
    return facts + sum(sorted((_length(t) for t in kind.distractors), reverse=True)[
        :num_distractors])


SUMMARY_WORDS = 9  # the longest summary (a sales one); each template's summary is checked


def make_report(kind: Kind, rng: np.random.Generator, num_distractors: int,
                lead_distractors: int) -> tuple[list[str], str]:
    """(sentences of one report, its summary): `lead_distractors` distractors first, then the
    fact sentences shuffled among the other distractors."""
    facts = kind.draw(rng)
    fill = lambda template: template.format(**facts)
    chosen = rng.permutation(len(kind.distractors))[:lead_distractors + num_distractors]
    distractors = [fill(kind.distractors[i]) for i in chosen]
    body = [fill(ts[int(rng.integers(len(ts)))]) for ts in kind.fact_templates]
    body += distractors[lead_distractors:]
    order = rng.permutation(len(body))
    return distractors[:lead_distractors] + [body[i] for i in order], facts["summary"]


class Reports(ProceduralSource):
    """Example i: a report of a random kind and its summary, as padded word ids + <eos>."""

    def __init__(self, cfg: Any, split: str, seed: int):
        super().__init__(split_length(cfg, split), seed, split)
        if not cfg.kinds:
            raise ConfigError(f"config.dataset.kinds is empty; name one or more of "
                              f"{', '.join(KINDS)}")
        self.kinds = [KINDS[k] for k in cfg.kinds]
        self.num_distractors, self.lead = int(cfg.num_distractors), int(cfg.lead_distractors)
        self.max_len, self.summary_len = int(cfg.max_len), int(cfg.summary_len)
        for name, kind in zip(cfg.kinds, self.kinds, strict=True):
            if self.lead + self.num_distractors > len(kind.distractors):
                raise ConfigError(
                    f"config.dataset.num_distractors={self.num_distractors} + lead_distractors="
                    f"{self.lead} exceeds the {len(kind.distractors)} distractor sentences of "
                    f"'{name}' reports; lower them")
            worst = longest_report(kind, self.lead + self.num_distractors) + 1  # + <eos>
            if worst > self.max_len:
                raise ConfigError(f"config.dataset.max_len={self.max_len} is shorter than the "
                                  f"longest '{name}' report ({worst} tokens); raise it")
        if SUMMARY_WORDS + 1 > self.summary_len:
            raise ConfigError(f"config.dataset.summary_len={self.summary_len} is shorter than "
                              f"the longest summary ({SUMMARY_WORDS + 1} tokens); raise it")

    def make(self, rng: np.random.Generator, index: int) -> dict[str, Any]:
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        sentences, summary = make_report(kind, rng, self.num_distractors, self.lead)
        tok = tokenizer()
        return {"inputs": pad_to(tok.encode(" ".join(sentences)) + [EOS], self.max_len),
                "targets": pad_to(tok.encode(summary) + [EOS], self.summary_len)}


@register_dataset("reports", fields={
    "kinds": Field(tuple(KINDS), "kinds of report drawn (evenly)",
                   each=Field("match", "a kind of report", choices=tuple(KINDS))),
    "num_distractors": Field(4, "sentences with no summary fact shuffled among the facts",
                             low=0),
    "lead_distractors": Field(1, "sentences with no summary fact that open every report (what "
                                 "the lead baseline copies)", low=0),
    "max_len": Field(96, "report tokens, <eos> included (padded to it)", low=2),
    "summary_len": Field(12, "summary tokens, <eos> included (padded to it)", low=2),
    **SPLIT_FIELDS})
def reports(cfg: Any, split: str, seed: int) -> Reports:
    """Offline summarization of generated match, weather and sales reports (word level)."""
    return Reports(cfg, split, seed)
