"""Transformer tasks: MLM corruption statistics, decoding (greedy, beam vs exhaustive search,
KV-cached sampling vs re-reading the buffer), top-k/top-p filtering, label smoothing, the
procedural sources and tokenizers, and the configs end to end.
"""

from __future__ import annotations

import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dl_arch.data.sources.translation import SyntheticLanguage
from dl_arch.data.tokenizers import EOS, PAD, ByteTokenizer, train_sentencepiece
from dl_arch.models.transformer import GPT, EncoderDecoderTransformer
from dl_arch.tasks.generation import filter_logits, generate_cached, generate_uncached
from dl_arch.tasks.masked_lm import corrupt
from dl_arch.tasks.translation import (
    beam_search,
    greedy_decode,
    length_penalty,
    shift_right,
    smoothed_cross_entropy,
)
from dl_arch.testing import load_config, overfit_one_batch
from dl_arch.train.loop import train_and_evaluate


def test_mlm_corruption_rates_80_10_10():
    tokens = jax.random.randint(jax.random.key(0), (400, 256), 4, 1000)
    tokens = tokens.at[:, :8].set(jnp.array([0, 1, 2, 3, 0, 0, 1, 2]))  # specials
    out, w = corrupt(jax.random.key(1), tokens, 1000)
    out, w, tokens = np.asarray(out), np.asarray(w).astype(bool), np.asarray(tokens)
    assert not w[:, :8].any() and (out[:, :8] == tokens[:, :8]).all()  # specials untouched
    assert (out[~w] == tokens[~w]).all()  # unselected tokens unchanged
    content = tokens[:, 8:] >= 4
    assert abs(w[:, 8:].sum() / content.sum() - 0.15) < 0.005
    sel_out, sel_in = out[w], tokens[w]
    masked = np.mean(sel_out == 3)
    kept = np.mean(sel_out == sel_in)
    random = 1 - masked - kept
    assert abs(masked - 0.8) < 0.01 and abs(random - 0.1) < 0.01
    assert abs(kept - 0.1) < 0.01  # (a random draw equal to the original is rare: 1/996)
    assert sel_out[sel_out != 3].min() >= 4  # random replacements are content tokens


def test_label_smoothing_matches_formula():
    logits = jax.random.normal(jax.random.key(0), (2, 3, 7))
    targets = jnp.array([[1, 2, 3], [4, 5, 6]])
    got = np.asarray(smoothed_cross_entropy(logits, targets, 0.1))
    logp = np.asarray(jax.nn.log_softmax(logits))
    nll = -np.take_along_axis(logp, np.asarray(targets)[..., None], -1)[..., 0]
    want = 0.9 * nll + 0.1 * (-logp.mean(-1))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_array_equal(shift_right(targets), [[1, 1, 2], [1, 4, 5]])


def test_top_k_top_p_filtering_matches_numpy():
    logits = jnp.array([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum()
    kept = lambda x: np.isfinite(np.asarray(x)[0])
    np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, 3, 1.0)), [1, 1, 1, 0, 0, 0])
    for p in (0.3, 0.6, 0.9, 0.99):
        # smallest prefix of the sorted distribution whose mass reaches p
        n = int(np.searchsorted(np.cumsum(probs), p) + 1)
        np.testing.assert_array_equal(kept(filter_logits(logits, 1.0, 0, p)),
                                      np.arange(6) < n, err_msg=f"top_p={p}")
    np.testing.assert_allclose(filter_logits(logits, 0.5, 0, 1.0), logits / 0.5)


def _tiny_translator():
    model = EncoderDecoderTransformer(vocab_size=5, emb_dim=16, num_heads=2,
                                      num_encoder_layers=1, num_decoder_layers=1, mlp_dim=32,
                                      max_len=8, dropout_rate=0.0)
    src = jnp.array([[3, 4, 3, 2], [4, 4, 2, 0]])
    params = jax.jit(model.init)(jax.random.key(3), src, src)["params"]
    # sharpen the output distribution so hypotheses differ clearly
    params["target_embed"]["embedding"] = params["target_embed"]["embedding"] * 6.0
    return model, params, src


def test_greedy_decode_matches_repeated_full_forward():
    model, params, src = _tiny_translator()
    got = np.asarray(jax.jit(lambda p, s: greedy_decode(model, p, s, 4))(params, src))
    seq = np.ones((2, 1), np.int32)
    forward = jax.jit(lambda s, t: model.apply({"params": params}, s, t))
    for _ in range(4):
        logits = forward(src, jnp.asarray(seq))
        seq = np.concatenate([seq, np.asarray(jnp.argmax(logits[:, -1], -1))[:, None]], 1)
    want = seq[:, 1:]
    for row in want:  # <pad> after the first <eos>
        hit = np.where(row == EOS)[0]
        if len(hit):
            row[hit[0] + 1:] = PAD
    np.testing.assert_array_equal(got, want)


def test_beam_search_with_wide_beam_equals_exhaustive_search():
    model, params, src = _tiny_translator()
    length, alpha, vocab = 3, 0.6, 5
    got = np.asarray(jax.jit(lambda p, s: beam_search(model, p, s, length, vocab ** 2, alpha))(
        params, src))
    # exhaustive: every sequence, scored by a teacher-forced full forward pass
    seqs, ends = [], []
    for seq in itertools.product(range(vocab), repeat=length):
        seq = list(seq)
        end = seq.index(EOS) + 1 if EOS in seq else length
        if all(s == PAD for s in seq[end:]):  # nothing but <pad> after <eos>
            seqs.append(seq)
            ends.append(end)
    seqs_NL, ends_N = np.array(seqs), np.array(ends)
    dec_in = np.concatenate([np.ones((len(seqs), 1), np.int32), seqs_NL[:, :-1]], axis=1)
    forward = jax.jit(lambda s, t: jax.nn.log_softmax(model.apply({"params": params}, s, t)))
    best = []
    for b in range(2):
        logp_NLV = np.asarray(forward(jnp.tile(src[b:b + 1], (len(seqs), 1)), dec_in))
        logp_NL = np.take_along_axis(logp_NLV, seqs_NL[..., None], -1)[..., 0]
        score_N = (logp_NL * (np.arange(length)[None, :] < ends_N[:, None])).sum(1)
        norm_N = score_N / np.asarray(length_penalty(jnp.asarray(ends_N), alpha))
        best.append(seqs_NL[np.argmax(norm_N)])
    np.testing.assert_array_equal(got, np.array(best))


def test_beam_size_one_is_greedy():
    model, params, src = _tiny_translator()
    beam = jax.jit(lambda p, s: beam_search(model, p, s, 6, beam_size=1, alpha=0.0))
    greedy = jax.jit(lambda p, s: greedy_decode(model, p, s, 6))
    np.testing.assert_array_equal(beam(params, src), greedy(params, src))


def test_cached_generation_matches_rereading_the_buffer():
    model = GPT(vocab_size=40, emb_dim=32, num_layers=2, num_heads=4, num_kv_heads=2,
                mlp_dim=64, max_len=24, dropout_rate=0.0)
    prompt = jax.random.randint(jax.random.key(0), (2, 5), 1, 40)
    params = jax.jit(model.init)(jax.random.key(1), prompt)["params"]
    for temperature, top_k, top_p in ((0.0, 0, 1.0), (1.0, 5, 0.9)):
        args = (params, prompt, 12, jax.random.key(2), temperature, top_k, top_p)
        a = jax.jit(lambda *a: generate_cached(model, *a), static_argnums=(2, 4, 5, 6))(*args)
        b = jax.jit(lambda *a: generate_uncached(model, *a), static_argnums=(2, 4, 5, 6))(*args)
        np.testing.assert_array_equal(a, b)


def test_procedural_language_and_tokenizers():
    lang = SyntheticLanguage(num_topics=3, words_per_topic=5, language_seed=1)
    src, tgt = lang.sentence(np.random.default_rng(0), topic=1, pp_prob=1.0)
    assert len(src) == len(tgt) and src[1:].count(src[0]) < len(src)
    # the verb (first word after the subject phrase) goes last, translated by the lexicon
    verb = next(w for w in src if w in sum(lang.src["verb"], []))
    assert tgt[-1] == lang.lexicon[verb]
    tok = lang.tokenizer
    assert tok.decode(tok.encode(" ".join(src)) + [EOS, 7, 7]) == " ".join(src)
    bt = ByteTokenizer()
    assert bt.decode(bt.encode("héllo") + [EOS]) == "héllo" and min(bt.encode("\x00")) == 4


def test_sentencepiece_reserves_the_special_ids(tmp_path):
    texts = [f"the cat number {i} sat on mat {i % 7} and saw dog {i % 5}" for i in range(300)]
    tok = train_sentencepiece(texts, 60, str(tmp_path))
    assert tok.sp.id_to_piece(3) == "<mask>" and tok.sp.pad_id() == 0 and tok.sp.eos_id() == 2
    ids = tok.encode("the cat sat on mat 3")
    assert min(ids) >= tok.num_special and tok.decode(ids + [EOS, 9]) == "the cat sat on mat 3"
    # cached: a second call with the same text reuses the model file
    assert train_sentencepiece(texts, 60, str(tmp_path)).sp.serialized_model_proto() == \
        tok.sp.serialized_model_proto()


@pytest.mark.parametrize("spec,metric", [
    ("configs/transformer_translate.py:smoke", "token_accuracy"),
    ("configs/bert_pretrain_offline.py:smoke", "mlm_accuracy"),
    ("configs/bert_finetune_offline.py:smoke", "accuracy"),
    ("configs/gpt_text.py:smoke", "accuracy"),
    ("configs/vit_shapes.py:smoke", "accuracy"),
])
def test_configs_overfit_one_batch(spec, metric):
    config = load_config(spec)
    config.optimizer.learning_rate = 3e-3
    config.optimizer.schedule = "constant"
    config.optimizer.warmup_steps = 0
    for name in ("dropout_rate",):
        config.model[name] = 0.0
    history, _ = overfit_one_batch(config, steps=60)
    losses = [h["loss"] for h in history]
    if spec.endswith("bert_pretrain_offline.py:smoke"):  # a fresh random masking every step
        assert np.mean(losses[-5:]) < 0.6 * losses[0], losses[::10]
    else:
        assert losses[-1] < 0.5 * losses[0], losses[::10]
        assert history[-1][metric] > 0.8, history[-1]


def test_every_config_builds_its_model():
    from dl_arch.tasks.base import build_model

    names = ["transformer_translate", "transformer_wmt14", "bert_pretrain_offline",
             "bert_finetune_offline", "bert_scratch_offline", "bert_imdb", "gpt_text",
             "gpt_tiny_shakespeare", "vit_shapes", "vit_cifar10", "vit_imagenet"]
    for name in names:
        for arg in ("", "smoke"):
            config = load_config(f"configs/{name}.py:{arg}")
            assert build_model(config.model, config) is not None, name
            assert config.num_train_steps > 0


def test_translation_end_to_end_logs_bleu(tmp_path):
    summary = train_and_evaluate(load_config("configs/transformer_translate.py:smoke"),
                                 str(tmp_path))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    bleu = [r for r in rows if "eval/bleu_beam" in r]
    assert bleu and 0.0 <= bleu[-1]["eval/bleu_beam"] <= 100.0
    assert "ref:" in open(tmp_path / "translations.txt").read()


def test_pretrain_then_finetune_loads_the_encoder(tmp_path, caplog):
    pre = str(tmp_path / "pre")
    train_and_evaluate(load_config("configs/bert_pretrain_offline.py:smoke"), pre)
    config = load_config(f"configs/bert_finetune_offline.py:smoke,init_from={pre}")
    with caplog.at_level("INFO", logger="dl_arch"):
        summary = train_and_evaluate(config, str(tmp_path / "ft"))
    assert summary["completed"]
    report = " ".join(r.getMessage() for r in caplog.records if "init_from" in r.getMessage())
    assert "loaded" in report and "new 4" in report  # pooler + classifier are new


def test_tfds_translation_with_locally_trained_sentencepiece(tmp_path):
    config = load_config("configs/transformer_wmt14.py:smoke,pair=ted")
    config.dataset.tokenizer_dir = str(tmp_path / "spm")
    with tfds.testing.mock_data(num_examples=16):
        summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    assert any(f.endswith(".model") for f in os.listdir(tmp_path / "spm"))
