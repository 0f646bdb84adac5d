"""Extractive QA: SQuAD metrics, windows and the best span across them, the span model against
`transformers`, the offline / TFDS / JSON sources, and training through the Trainer."""

from __future__ import annotations

import json
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
import torch
import transformers

from dl_arch.config.errors import ConfigError
from dl_arch.data.pipeline import make_source
from dl_arch.data.sources.squad import (
    ByteOffsets,
    WordOffsets,
    read_squad_json,
    token_span,
    window_features,
    window_starts,
)
from dl_arch.interop import huggingface as hf
from dl_arch.models.span_qa import BertSpanQA, question_word_mask
from dl_arch.models.transformer import Bert
from dl_arch.tasks.question_answering import answer_positions, best_spans, span_loss
from dl_arch.tasks.squad_metrics import (
    best_over_golds,
    exact_match,
    f1,
    normalize_answer,
    squad_scores,
)
from dl_arch.testing import load_config, overfit_one_batch
from dl_arch.train.loop import train_and_evaluate

jax.config.update("jax_numpy_rank_promotion", "raise")


# ----- SQuAD exact match and F1, on hand-computed cases -----

def test_normalisation_drops_case_punctuation_articles_and_extra_space():
    assert normalize_answer("  The Eiffel-Tower, an  icon! ") == "eiffeltower icon"
    assert normalize_answer("A theatre") == "theatre"  # 'the' inside a word stays
    assert normalize_answer("the a an") == ""


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Baker.", "baker") == 1.0
    assert exact_match("a baker in town", "baker") == 0.0
    assert f1("a baker in town", "baker") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))  # 0.5
    assert f1("cat cat dog", "cat dog dog") == pytest.approx(2 / 3)  # common: cat x1, dog x1
    assert f1("march 1843", "1843") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert f1("tavik", "dunmore") == 0.0
    assert f1("the", "an") == 1.0 and f1("", "cat") == 0.0  # both empty after normalising


def test_several_golds_take_the_best_and_scores_are_percent_means():
    assert best_over_golds("March 1843", ["1843", "in march 1843", "march, 1843"]) == (1.0, 1.0)
    em, score = best_over_golds("1843", ["march 1843", "1843 or so"])
    assert em == 0.0 and score == pytest.approx(2 / 3)
    scores = squad_scores(["tavik", "march"], [["Tavik"], ["march 1843", "in 1843"]])
    assert scores["exact_match"] == pytest.approx(50.0)
    assert scores["f1"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)


# ----- windows -----

CFG = types.SimpleNamespace(max_len=12, doc_stride=3, max_windows=4, max_query_len=3,
                            max_context_len=32)


def test_window_starts_cover_the_passage_with_overlap():
    assert window_starts(5, 7, 3) == [0]
    assert window_starts(12, 7, 3) == [0, 3, 6]  # the last one reaches token 12
    assert window_starts(10, 4, 9) == [0, 4, 8]  # never a gap when stride > room


def test_answer_in_the_second_window_only_points_the_first_at_cls():
    context = list(range(100, 112))  # 12 passage tokens; room = 12 - 2 - 3 = 7
    offsets = np.stack([np.arange(12) * 2, np.arange(12) * 2 + 1], 1)
    out = window_features([7, 8], context, offsets, (8, 9), 1, 2, CFG, example_id=5)
    np.testing.assert_array_equal(out["window_mask"], [1, 1, 1, 0])
    # window 1: [CLS] q q [SEP] ctx[3:10] [SEP]; answer tokens 8, 9 sit at 4 + 5, 4 + 6
    np.testing.assert_array_equal(out["inputs"][1], [1, 7, 8, 2, *range(103, 110), 2])
    np.testing.assert_array_equal(out["token_types"][1], [0] * 4 + [1] * 8)
    np.testing.assert_array_equal(out["context_index"][1], [-1] * 4 + list(range(3, 10)) + [-1])
    np.testing.assert_array_equal(out["starts"], [0, 9, 6, 0])  # window 0 ends at token 6
    np.testing.assert_array_equal(out["ends"], [0, 10, 7, 0])
    np.testing.assert_array_equal(out["answer_tokens"], [8, 9])
    assert out["example_id"] == 5 and out["context_offsets"][11].tolist() == [22, 23]


def test_a_window_holding_only_a_retelling_targets_it_not_cls():
    context = list(range(100, 112))  # room 7: windows start at 0, 3, 6
    offsets = np.stack([np.arange(12) * 2, np.arange(12) * 2 + 1], 1)
    out = window_features([7, 8], context, offsets, (1, 2), 1, 2, CFG, 0,
                          retellings=[(9, 10), (4, 5)])
    # window 0 holds the answer (1, 2) and the retelling (4, 5): the answer wins; window 1
    # holds only (4, 5) and the later (9, 10) is not whole in it; window 2 holds (9, 10)
    np.testing.assert_array_equal(out["starts"], [5, 5, 7, 0])
    np.testing.assert_array_equal(out["ends"], [6, 6, 8, 0])
    np.testing.assert_array_equal(out["answer_tokens"], [1, 2])  # the gold stays the first


def test_offline_windows_with_a_retold_fact_target_its_telling():
    source = make_source(_offline(num_eval_examples=400), "test", 0)
    retold = 0
    for i in range(400):
        passage, _, spans, answer = source.story(i)
        ex = source[i]
        for k in np.flatnonzero(ex["window_mask"] > 0):
            inside = ex["context_index"][k]
            whole = [sp for sp in spans if sp[0] in inside and sp[1] in inside]
            if not whole:
                assert ex["starts"][k] == ex["ends"][k] == 0
                continue
            a, b = inside[ex["starts"][k]], inside[ex["ends"][k]]
            assert (a, b) == whole[0]  # the first telling in the window
            retold += int(len(spans) > 1 and (a, b) != spans[0])
    assert retold > 5  # windows that held only the second telling were [CLS] before


def test_token_span_of_characters_and_byte_offsets():
    ids, offsets = WordOffsets({"in": 4, "tavik": 5, "born": 6}).encode("born  in tavik")
    assert ids == [6, 4, 5] and offsets.tolist() == [[0, 4], [6, 8], [9, 14]]
    assert token_span(offsets, 9, 14) == (2, 2) and token_span(offsets, 4, 6) == (-1, -1)
    ids, offsets = ByteOffsets().encode("né")
    assert ids == [ord("n") + 4, 0xC3 + 4, 0xA9 + 4] and offsets[:, 0].tolist() == [0, 1, 1]


def _best_span_reference(logits, context_index, window_mask, max_len):
    """Brute force over every (window, start, end) in numpy."""
    best, arg = -np.inf, None
    for w in range(logits.shape[0]):
        for s in range(logits.shape[1]):
            for e in range(s, min(s + max_len, logits.shape[1])):
                if window_mask[w] and context_index[w, s] >= 0 and context_index[w, e] >= 0:
                    score = logits[w, s, 0] + logits[w, e, 1]
                    if score > best:
                        best, arg = score, (w, s, e)
    return arg, best


class BestSpanTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_best_span_across_windows_matches_brute_force(self):
        rng = np.random.default_rng(0)
        context = list(range(100, 112))
        offsets = np.stack([np.arange(12), np.arange(12) + 1], 1)
        out = window_features([7, 8], context, offsets, (8, 9), 1, 2, CFG, 0)
        logits = rng.normal(size=(2, 4, 12, 2)).astype(np.float32)
        logits[0, :, 1:3] += 50.0  # question tokens: never chosen
        logits[1, 1, 9, 0] += 30.0  # answer starts in window 1 ...
        logits[1, 1, 10, 1] += 30.0  # ... and ends there
        logits[1, 0, 8, 0] += 35.0  # higher, but its end comes before its start ...
        logits[1, 0, 6, 1] += 35.0
        logits[1, 1, 4, 0] += 35.0  # ... or 7 tokens before the end: longer than 3
        ci = np.stack([out["context_index"]] * 2)
        wm = np.stack([out["window_mask"]] * 2)
        got = jax.device_get(self.variant(best_spans, static_argnums=3)(logits, ci, wm, 3))
        for b in range(2):
            (w, s, e), score = _best_span_reference(logits[b], ci[b], wm[b], 3)
            assert (got["window"][b], got["start"][b], got["end"][b]) == (w, s, e)
            assert got["score"][b] == pytest.approx(score, rel=1e-6)
            assert (got["context_start"][b], got["context_end"][b]) == (ci[b, w, s], ci[b, w, e])
        assert (got["context_start"][1], got["context_end"][1]) == (8, 9)


def test_span_loss_is_the_mean_of_masked_start_and_end_cross_entropy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 6, 2)).astype(np.float32)
    ci = np.array([[-1, -1, 0, 1, 2, -1], [-1, -1, 0, 1, -1, -1]])
    starts, ends = np.array([2, 0]), np.array([4, 0])
    ce, hit_s, _ = span_loss(jnp.asarray(logits), answer_positions(jnp.asarray(ci)),
                             jnp.asarray(starts), jnp.asarray(ends))
    for b in range(2):
        valid = (ci[b] >= 0) | (np.arange(6) == 0)
        want = 0.0
        for k, target in ((0, starts[b]), (1, ends[b])):
            z = logits[b, valid, k]
            log_p = z - np.log(np.exp(z - z.max()).sum()) - z.max()
            want += -log_p[np.flatnonzero(valid).tolist().index(target)] / 2
        assert float(ce[b]) == pytest.approx(want, rel=1e-5)
    assert hit_s.shape == (2,)


# ----- the span model: Bert's parameter paths, and transformers' logits -----

def test_span_model_has_berts_encoder_paths_and_matches_transformers_qa():
    cfg = transformers.BertConfig(vocab_size=101, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=40)
    torch.manual_seed(0)
    ref = transformers.BertForQuestionAnswering(cfg).eval()
    tokens = np.random.default_rng(2).integers(1, 101, size=(2, 9))
    tokens[1, 7:] = 0
    types_ = (np.arange(9) >= 4).astype(np.int64)[None].repeat(2, 0)
    with torch.no_grad():
        out = ref(torch.tensor(tokens), attention_mask=torch.tensor(tokens > 0),
                  token_type_ids=torch.tensor(types_))
    fields, params = hf.import_bert(ref.state_dict(), cfg)
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    params["span_head"] = {"kernel": sd["qa_outputs.weight"].T, "bias": sd["qa_outputs.bias"]}
    model = BertSpanQA(**{k: v for k, v in fields.items() if k not in ("head", "pooler")},
                       dropout_rate=0.0)
    got = np.asarray(model.apply({"params": params}, tokens, types_))
    real = tokens > 0
    np.testing.assert_allclose(got[..., 0][real], out.start_logits.numpy()[real], atol=1e-4)
    np.testing.assert_allclose(got[..., 1][real], out.end_logits.numpy()[real], atol=1e-4)
    # the encoder's parameters sit where Bert's do, shape for shape
    ours = jax.jit(model.init)(jax.random.key(0), tokens)["params"]
    bert = Bert(**{k: v for k, v in fields.items() if k not in ("head", "pooler")},
                head="none", pooler=False).init(jax.random.key(0), tokens)["params"]
    shapes = lambda tree: jax.tree.map(lambda x: x.shape, tree)
    assert shapes({k: v for k, v in ours.items() if k != "span_head"}) == shapes(bert)


def test_question_match_marks_the_passage_words_of_the_question():
    """Against a plain loop over `[CLS] question [SEP] passage [SEP] pad` windows: ids 2/3
    are [CLS]/[SEP], words 4-11 (few, so that many repeat), so the question's [CLS] and
    [SEP] must not mark the passage's [SEP]."""
    rng = np.random.default_rng(3)
    tokens, types_ = np.zeros((6, 20), np.int64), np.zeros((6, 20), np.int64)
    for row, (q, p) in enumerate(rng.integers(1, 8, size=(6, 2))):
        words = rng.integers(4, 12, size=q + p)
        tokens[row, : q + p + 3] = [2, *words[:q], 3, *words[q:], 3]
        types_[row, q + 2: q + p + 3] = 1
    want = np.zeros(tokens.shape, bool)
    for row in range(6):
        question = set(tokens[row, 1: int(np.argmax(tokens[row] == 3))].tolist())
        want[row] = (types_[row] == 1) & np.isin(tokens[row], list(question))
    got = question_word_mask(jnp.asarray(tokens), jnp.asarray(types_))
    np.testing.assert_array_equal(np.asarray(got), want)
    assert want.any() and not want[tokens == 3].any()


def test_question_match_starts_as_plain_bert_and_learns():
    """Its vector starts at zero (imported or pretrained BERT's logits are unchanged at the
    first step) and gets a gradient wherever a passage word is in the question."""
    fields = dict(vocab_size=30, hidden=16, num_layers=1, num_heads=2, mlp_dim=32, max_len=12,
                  dropout_rate=0.0)
    tokens = jnp.array([[2, 5, 6, 3, 7, 5, 8, 6, 3, 0, 0, 0]])
    types_ = jnp.array([[0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]])
    with_match = BertSpanQA(question_match=True, **fields)
    params = jax.jit(with_match.init)(jax.random.key(0), tokens, types_)["params"]
    plain = {k: v for k, v in params.items() if k != "match_embed"}
    start = jax.jit(with_match.apply)({"params": params}, tokens, types_)
    chex.assert_trees_all_close(
        start, jax.jit(BertSpanQA(**fields).apply)({"params": plain}, tokens, types_), atol=1e-6)
    weighted_start = lambda p: (with_match.apply({"params": p}, tokens, types_)[0, :, 0]
                                @ jnp.arange(12.0))
    grads = jax.jit(jax.grad(weighted_start))(params)["match_embed"]["embedding"]
    assert float(jnp.abs(grads[1]).sum()) > 0


def test_base_size_has_the_published_parameter_count():
    model = BertSpanQA()  # bert-base encoder (no pooler) + 768 x 2 span head: 108,893,186
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 108_893_186


# ----- sources -----

def _offline(**fields):
    import ml_collections

    return ml_collections.ConfigDict({"name": "reading_comprehension", **fields})


def test_offline_examples_are_deterministic_spans_and_share_the_pretraining_text():
    source = make_source(_offline(num_eval_examples=50), "test", 3)
    passages = make_source(_offline(name="synthetic_passages", num_eval_examples=50,
                                    max_len=128), "test", 3)
    other = make_source(_offline(num_eval_examples=50), "train", 3)
    long_ones = 0
    for i in range(50):
        passage, question, spans, answer = source.story(i)
        words = passage.split()
        for span in spans:  # every telling of the fact states the answer
            assert " ".join(words[span[0]: span[1] + 1]) == answer
        assert answer in passage and question.endswith("?")
        ex = source[i]
        chex.assert_trees_all_equal(ex, source[i])
        assert not np.array_equal(ex["inputs"], other[i]["inputs"])
        # the pretraining source reads exactly these passages, so their words are covered
        ids = passages[i]["inputs"]
        assert ids[ids > 0].tolist() == [1, *source.lex.tokenizer.encode(passage)[0], 2]
        long_ones += int(ex["window_mask"].sum() > 1)
        k = int(np.flatnonzero(ex["starts"] > 0)[0])  # a window holding the answer
        toks = ex["inputs"][k, ex["starts"][k]: ex["ends"][k] + 1]
        assert toks.tolist() == source.lex.tokenizer.encode(answer)[0] or answer.startswith("the ")
    assert long_ones > 5  # many passages need several windows


def _squad_file(tmp_path, answer_start=14, drop=None):
    qa = {"id": "q1", "question": "Where was Anna born?",
          "answers": [{"text": "Tavik", "answer_start": answer_start}]}
    if drop:
        del qa[drop]
    data = {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": "Anna was born in Tavik in 1843.", "qas": [qa]},
        {"context": "Bela moved to Dunmore.", "qas": [
            {"id": "q2", "question": "Where did Bela move?",
             "answers": [{"text": "Dunmore", "answer_start": 14},
                         {"text": "to Dunmore", "answer_start": 11}]}]}]}]}
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_squad_json_reads_spans_and_holds_out_paragraphs(tmp_path):
    import ml_collections

    path = _squad_file(tmp_path, answer_start=17)
    cfg = ml_collections.ConfigDict({"name": "squad_json", "path": path, "eval_fraction": 0.5,
                                     "max_len": 32})
    train, test = make_source(cfg, "train", 0), make_source(cfg, "test", 0)
    assert len(train) == len(test) == 1
    both = [train.reference(0), test.reference(0)]
    assert sorted(r[0][:4] for r in both) == ["Anna", "Bela"]
    for source in (train, test):
        passage, _, golds = source.reference(0)
        ex = source[0]
        a, b = ex["answer_tokens"]
        c0, c1 = ex["context_offsets"][a, 0], ex["context_offsets"][b, 1]
        assert passage[c0:c1] == golds[0]  # bytes: the answer's characters exactly


@pytest.mark.parametrize("change, message", [
    (dict(answer_start=3), r"qa\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: answer "
                           r"'Tavik' is not at answer_start=3"),
    (dict(drop="question"), r"qa\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\] has no str field "
                            r"'question'"),
    (dict(drop="answers"), r"has no list field 'answers'"),
])
def test_squad_json_mistakes_are_one_line_errors(tmp_path, change, message):
    path = _squad_file(tmp_path, **{"answer_start": 17, **change})
    with pytest.raises(ConfigError, match=message) as info:
        read_squad_json(path)
    assert "\n" not in str(info.value)


def test_tfds_squad_adapter_on_mock_data_and_a_hand_made_record():
    import ml_collections

    from dl_arch.data.pipeline import resolve_dataset
    from dl_arch.data.sources.squad import QASource, TfdsRecords

    cfg = ml_collections.ConfigDict({"name": "tfds_squad", "max_len": 48, "doc_stride": 16,
                                     "max_context_len": 128, "num_eval_examples": 3})
    with tfds.testing.mock_data(num_examples=4):
        source = make_source(cfg, "validation", 0)
        assert len(source) == 3
        ex = source[2]
        passage, question, golds = source.reference(2)
    assert isinstance(passage, str) and isinstance(question, str) and golds
    assert ex["inputs"].shape == (4, 48) and ex["inputs"][0, 0] == 1
    assert (ex["inputs"] < 260).all() and ex["window_mask"][0] == 1
    # a record as TFDS stores it (bytes, several answers): the first one is marked
    record = {"context": b"Anna was born in Tavik.", "question": b"Where was Anna born?",
              "answers": {"text": np.array([b"Tavik", b"in Tavik"]),
                          "answer_start": np.array([17, 14], np.int32)}}
    one = QASource(TfdsRecords([record], None), resolve_dataset(cfg), strict=False, where="x")
    assert one.reference(0) == ("Anna was born in Tavik.", "Where was Anna born?",
                                ["Tavik", "in Tavik"])
    a, b = one[0]["answer_tokens"]
    assert (a, b) == (17, 21)  # byte tokens of "Tavik"


# ----- training -----

def test_span_model_overfits_one_batch():
    config = load_config("configs/bert_qa_offline.py:smoke")
    config.model.update(hidden=64, num_heads=4, mlp_dim=128, dropout_rate=0.0)
    config.optimizer.update(learning_rate=3e-3, schedule="constant")
    history, _ = overfit_one_batch(config, steps=60)
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]
    assert history[-1]["start_accuracy"] == 1.0 and history[-1]["end_accuracy"] == 1.0


def test_pretrain_then_finetune_loads_the_encoder_and_reports_f1(tmp_path, caplog):
    pre = str(tmp_path / "pre")
    train_and_evaluate(load_config("configs/bert_qa_offline.py:smoke,pretrain,steps=2"), pre)
    config = load_config(f"configs/bert_qa_offline.py:smoke,init_from={pre},steps=4")
    with caplog.at_level("INFO", logger="dl_arch"):
        summary = train_and_evaluate(config, str(tmp_path / "ft"))
    report = " ".join(r.getMessage() for r in caplog.records if "init_from" in r.getMessage())
    assert "skipped 0" in report and "new 3" in report  # span_head's kernel, bias; match_embed
    assert 0.0 <= summary["eval/f1"] <= 100.0 and "eval/span_match" in summary
    assert "question:" in (tmp_path / "ft" / "answers.txt").read_text()


def test_json_with_an_imported_hf_bert_and_its_tokenizer(tmp_path, capsys):
    """bert_squad.py:hf=<folder>,data=<json>: a small random BERT and a WordPiece vocabulary
    saved locally (nothing downloaded) load as model, tokenizer and init_from."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "anna", "bela", "was", "born", "in",
             "tavik", "moved", "to", "dun", "##more", "where", "did", "move", "1843", ".", "?"]
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(str(folder))
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=64)
    transformers.BertForMaskedLM(cfg).save_pretrained(str(folder))
    data = _squad_file(tmp_path, answer_start=17)
    config = load_config(f"configs/bert_squad.py:smoke,hf={folder},data={data}")
    config.dataset.eval_fraction = 0.5
    summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["completed"] and 0.0 <= summary["eval/f1"] <= 100.0
    ex = make_source(config.dataset, "test", 0)[0]
    assert ex["inputs"][0, 0] == 2 and 3 in ex["inputs"][0].tolist()  # WordPiece [CLS] / [SEP]


@pytest.mark.parametrize("spec", ["bert_qa_offline.py", "bert_qa_offline.py:smoke",
                                  "bert_qa_offline.py:pretrain", "bert_qa_offline.py:smoke,pretrain",
                                  "bert_squad.py", "bert_squad.py:smoke",
                                  "bert_squad.py:data=qa.json"])
def test_configs_resolve_and_pretraining_matches_the_qa_encoder(spec):
    from dl_arch.config.resolve import resolve_config
    from dl_arch.tasks.base import build_model

    config = resolve_config(load_config(f"configs/{spec}"))
    assert build_model(config.model, config) is not None and config.num_train_steps > 0
    if spec.startswith("bert_qa_offline"):  # the encoder shapes init_from needs
        other = load_config(f"configs/{spec.replace(',pretrain', '').replace(':pretrain', '')}")
        for key in ("vocab_size", "max_len", "hidden", "num_layers", "num_heads", "mlp_dim"):
            assert config.model[key] == other.model[key], key
