"""Summarization: ROUGE through rouge-score against hand-computed values and an independent LCS,
the procedural reports (deterministic, facts that parse back out, a poor lead baseline),
the TFDS adapters on mock data, both models overfitting one batch, the configs end to end.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.config.errors import ConfigError
from dl_arch.config.resolve import resolve_config
from dl_arch.data.pipeline import make_source
from dl_arch.data.sources.reports import KINDS, make_report, tokenizer
from dl_arch.tasks.rouge import lead, rouge, rouge_tokens, sentences
from dl_arch.testing import load_config, overfit_one_batch
from dl_arch.train.loop import train_and_evaluate

TF_SMOKE = "configs/transformer_summarize.py:smoke"
RNN_SMOKE = "configs/seq2seq_summarize.py:smoke"


# ----- ROUGE -----
def test_rouge_matches_hand_computed_values():
    ref, pred = "the cat was under the bed", "the cat was found under the bed"
    got = rouge([pred], [ref], stem=False)
    # unigrams: 6 of 7 predicted match, all 6 reference ones are found: F = 2PR/(P+R) = 12/13
    # bigrams: 4 shared of 6 predicted and 5 reference: F = 2 (4/6)(4/5) / (4/6 + 4/5) = 8/11
    # LCS "the cat was under the bed" = 6 tokens: as ROUGE-1
    np.testing.assert_allclose([got["rouge1"], got["rouge2"], got["rougeL"]],
                               [1200 / 13, 800 / 11, 1200 / 13], rtol=1e-6)
    assert rouge(["The Cat!"], ["the cat"])["rouge2"] == pytest.approx(100.0)  # case, punctuation
    assert rouge(["a b c"], ["d e f"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # "c a b" vs "a b c": LCS "a b" = 2 of 3, ROUGE-1 is 100; the mean of two pairs halves it
    two = rouge(["c a b", "x y z"], ["a b c", "p q r"], stem=False)
    assert two["rouge1"] == pytest.approx(50.0) and two["rougeL"] == pytest.approx(100 / 3)
    # Porter stemming of words longer than 3 letters: running -> run, dogs -> dog
    assert rouge(["running dogs"], ["run dog"], stem=True)["rouge1"] == pytest.approx(100.0)
    assert rouge(["running dogs"], ["run dog"], stem=False)["rouge1"] == 0.0


def _lcs(a: list[str], b: list[str]) -> int:
    table = np.zeros((len(a) + 1, len(b) + 1), int)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1, j + 1] = table[i, j] + 1 if x == y else max(table[i, j + 1],
                                                                       table[i + 1, j])
    return int(table[-1, -1])


def test_rouge_l_matches_an_independent_lcs_on_report_words():
    rng = np.random.default_rng(0)
    words = [w for w in tokenizer().words[4:] if w.isalpha()][:30]  # not "."
    preds = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(20)]
    refs = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(20)]
    want = []
    for p, r in zip(preds, refs, strict=True):
        p, r = p.split(), r.split()
        n = _lcs(p, r)
        want.append(0.0 if n == 0 else 2 * n / (len(p) + len(r)))  # F of P = n/|p|, R = n/|r|
    assert rouge(preds, refs, stem=False)["rougeL"] == pytest.approx(100 * np.mean(want))


def test_rouge_tokens_are_rouge_scores_and_keep_every_report_word():
    from rouge_score import tokenize
    from rouge_score.tokenizers import porter

    text = "Orton beat Kelso 2-1, at Riverside! 30 degrees... running"
    assert rouge_tokens(text, stem=False) == tokenize.tokenize(text, None)
    assert rouge_tokens(text, stem=True) == tokenize.tokenize(text, porter.PorterStemmer())
    for name, kind in KINDS.items():  # ROUGE sees exactly our words (minus '.'), one by one
        report, summary = make_report(kind, np.random.default_rng(1), 4, 1)
        text = " ".join(report) + " " + summary
        assert rouge_tokens(text, stem=False) == [w for w in text.split() if w != "."], name


def test_lead_takes_the_first_sentences():
    assert sentences("One two. Three? Four! five") == ["One two.", "Three?", "Four!", "five"]
    assert lead("One two. Three? Four! five", 2) == "One two. Three?"
    assert lead("x y . z w . q .", 1) == "x y ." and lead("x y .", 3) == "x y ."


# ----- the procedural reports -----
def _reports(**fields):
    cfg = load_config(TF_SMOKE).dataset
    for k, v in fields.items():
        cfg[k] = v
    return cfg


def test_reports_are_deterministic_per_seed_split_and_index():
    cfg = _reports()
    a, b = make_source(cfg, "train", 0), make_source(cfg, "train", 0)
    for i in (0, 7, 12345):
        for key in ("inputs", "targets"):
            np.testing.assert_array_equal(a[i][key], b[i][key])
    other = make_source(cfg, "test", 0)[7]["inputs"]
    assert not np.array_equal(a[7]["inputs"], other)
    assert not np.array_equal(a[7]["inputs"], make_source(cfg, "train", 1)[7]["inputs"])
    batch = a.get_batch(np.array([3, 9]))
    np.testing.assert_array_equal(batch["targets"][1], a[9]["targets"])
    assert a[0]["inputs"].shape == (96,) and a[0]["targets"].shape == (12,)


def _either(pattern: str, text: str) -> tuple[str, ...]:
    """The groups of the alternative of `pattern` that matched (the others are None)."""
    return tuple(g for g in re.search(pattern, text).groups() if g is not None)


def _parse_match(report: str) -> str:
    home, hs = _either(r"(\w+) (?:scored|found the net) (\d+)", report)
    away, as_ = _either(r"(\w+) (?:replied with|managed) (\d+) goals", report)
    (ground,) = _either(r"played at (\w+)|(\w+) was the ground", report)
    hs, as_ = int(hs), int(as_)
    if hs == as_:
        return f"{home} drew {hs} {as_} with {away} at {ground}"
    win, lose = (home, away) if hs > as_ else (away, home)
    return f"{win} beat {lose} {max(hs, as_)} {min(hs, as_)} at {ground}"


def _parse_weather(report: str) -> str:
    city, t = _either(r"in (\w+) the temperature reached (\d+)|(\w+) saw a high of (\d+)",
                      report)
    (t2,) = _either(rf"tomorrow {city} should reach (\d+)|expect (\d+) degrees in {city}", report)
    (cond,) = _either(rf"most of {city} had (\w+)|(\w+) covered {city}", report)
    return f"{city} {t} degrees with {cond} {'warmer' if int(t2) > int(t) else 'cooler'} tomorrow"


def _parse_sales(report: str) -> str:
    now = _either(r"(\w+) sold (\d+) thousand (\w+) this quarter|"
                  r"sales of (\w+) at (\w+) came to (\d+)", report)
    firm, n1, goods = now if now[1].isdigit() else (now[1], now[2], now[0])
    (n0,) = _either(rf"earlier {firm} had sold (\d+)|the figure at {firm} was (\d+)", report)
    return f"{firm} {goods} sales {'rose' if int(n1) > int(n0) else 'fell'} from {n0} to {n1} " \
           f"thousand"


PARSERS = {"beat": _parse_match, "drew": _parse_match, "degrees": _parse_weather,
           "sales": _parse_sales}  # a word of the summary -> the parser of its kind


def test_report_summaries_follow_from_the_report_and_the_lead_is_poor():
    """Each summary is what an independent reading of its report's sentences gives, and
    copying the report's first sentences (the lead baseline) scores far below a model."""
    cfg = _reports(num_eval_examples=300)
    source, tok = make_source(cfg, "test", 0), tokenizer()
    docs, refs = [], []
    for i in range(len(source)):
        doc, ref = tok.decode(source[i]["inputs"]), tok.decode(source[i]["targets"])
        parse = next(PARSERS[w] for w in ref.split() if w in PARSERS)
        assert parse(doc) == ref, (doc, ref)
        assert ref not in doc  # the summary is never a sentence of the report
        docs.append(doc)
        refs.append(ref)
    lead1, lead3 = (rouge([lead(d, k) for d in docs], refs)["rougeL"] for k in (1, 3))
    assert lead1 < 15 and lead3 < 25, (lead1, lead3)


def test_reports_fail_in_one_line_on_impossible_sizes():
    with pytest.raises(ConfigError, match="config.dataset.max_len=40 is shorter"):
        make_source(_reports(max_len=40), "train", 0)
    with pytest.raises(ConfigError, match="num_distractors=9"):
        make_source(_reports(num_distractors=9), "train", 0)
    with pytest.raises(ConfigError, match="summary_len=5"):
        make_source(_reports(summary_len=5), "train", 0)
    with pytest.raises(ConfigError, match="config.dataset.kinds is empty"):
        make_source(_reports(kinds=()), "train", 0)


# ----- TFDS adapters (mock data) -----
@pytest.mark.parametrize("name,doc_key", [("cnn_dailymail", "article"), ("xsum", "document")])
def test_tfds_adapters_on_mock_data(name, doc_key, tmp_path):
    cfg = load_config("configs/transformer_cnn_dailymail.py:smoke").dataset
    cfg.tfds_name, cfg.tokenizer_dir = name, str(tmp_path)
    with tfds.testing.mock_data(num_examples=6):
        source = make_source(cfg, "train", 0)
        raw = tfds.data_source(name, split="train")[2]
        from dl_arch.data.sources.summarization_tfds import tokenizer as spm

        ex, tok = source[2], spm(cfg)
        assert ex["inputs"].shape == (32,) and ex["targets"].shape == (12,)
        assert (ex["inputs"] == 2).sum() == 1 and (ex["targets"] == 2).sum() == 1  # one <eos>
        want = tok.encode(raw[doc_key])[:31]
        np.testing.assert_array_equal(ex["inputs"][:len(want)], want)
        cfg.summary_key = "no_such_feature"
        with pytest.raises(ConfigError, match="summary_key='no_such_feature' is not a feature"):
            make_source(cfg, "train", 0)


# ----- training -----
@pytest.mark.parametrize("spec", [TF_SMOKE, RNN_SMOKE])
def test_both_models_overfit_one_batch(spec):
    config = load_config(spec)
    config.optimizer.learning_rate = 1e-2 if spec == RNN_SMOKE else 3e-3
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    config.task.label_smoothing = 0.0
    if spec == RNN_SMOKE:
        config.model.dropout = 0.0
    else:
        config.model.dropout_rate = 0.0
    history, _ = overfit_one_batch(config, steps=40)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"], [h["loss"] for h in history[::10]]
    assert history[-1]["token_accuracy"] > 0.95, history[-1]


@pytest.mark.parametrize("spec", [TF_SMOKE, RNN_SMOKE])
def test_smoke_configs_log_rouge_and_the_lead_baseline(spec, tmp_path):
    summary = train_and_evaluate(load_config(spec), str(tmp_path))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    last = [r for r in rows if "eval/rougeL_beam" in r][-1]
    for kind in ("beam", "greedy", "lead"):
        assert 0.0 <= last[f"eval/rougeL_{kind}"] <= 100.0
    assert last["eval/rougeL_lead"] > 0  # the lead shares some words with the summary
    assert "lead-3:" in open(tmp_path / "summaries.txt").read()


def test_own_tsv_trains_and_decodes_through_its_small_sentencepiece(tmp_path):
    """A user's document<TAB>summary file: the corpus is too small for the asked vocabulary,
    so the untrained model emits ids the tokenizer lacks; they decode as <unk>, not a crash."""
    rng = np.random.default_rng(0)
    words = "the council met on monday about roads schools parks rain river bridge".split()
    with open(tmp_path / "docs.tsv", "w") as f:
        for _ in range(120):
            doc = " . ".join(" ".join(rng.choice(words, 6)) for _ in range(4)) + " ."
            f.write(f"{doc}\t{' '.join(doc.split()[:4])}\n")
    config = load_config(f"{TF_SMOKE},data={tmp_path / 'docs.tsv'},vocab=300")
    config.dataset.tokenizer_dir = str(tmp_path / "spm")
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert config.dataset.name == "parallel_text" and summary["completed"]
    assert summary["eval/rougeL_lead"] > 0 and 0.0 <= summary["eval/rougeL_beam"] <= 100.0
    from dl_arch.data.sources.parallel_text import tokenizer as tsv_tokenizer

    tok = tsv_tokenizer(resolve_config(config).dataset)
    assert tok.vocab_size < 300
    assert "\u2047" in tok.decode_content([tok.vocab_size + 5])  # sentencepiece's <unk> mark


def test_cnn_dailymail_smoke_config_on_mock_data(tmp_path):
    config = load_config("configs/transformer_cnn_dailymail.py:smoke")
    config.dataset.tokenizer_dir = str(tmp_path / "spm")
    with tfds.testing.mock_data(num_examples=16):
        summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["completed"] and "eval/rougeL_lead" in summary


@pytest.mark.parametrize("spec", [TF_SMOKE, RNN_SMOKE, "configs/transformer_summarize.py",
                                  "configs/seq2seq_summarize.py:cell=lstm",
                                  "configs/transformer_cnn_dailymail.py",
                                  "configs/transformer_cnn_dailymail.py:data=xsum"])
def test_configs_resolve(spec):
    config = resolve_config(load_config(spec))
    assert config.task.name == "summarization" and config.evaluators == ("summaries",)
    if "xsum" in spec:
        assert config.dataset.tfds_name == "xsum" and config.summaries.lead_sentences == 1


def test_model_vocabulary_smaller_than_the_reports_is_one_line():
    from dl_arch.train.trainer import build_task

    config = load_config(TF_SMOKE)
    config.model.vocab_size = 100
    with pytest.raises(ConfigError, match="set config.model.vocab_size"):
        build_task(config)
