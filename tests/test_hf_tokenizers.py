"""A Hugging Face folder's tokenizer: the same ids, text and logits as `transformers`, and the
GPT-2 config that fine-tunes and samples through it. Every tokenizer and model is built here."""

from __future__ import annotations

import os
import re

import chex
import jax
import numpy as np
import pytest
import tokenizers
import torch
import transformers
from tokenizers import decoders, models, pre_tokenizers, trainers

from dl_arch.config.errors import ConfigError
from dl_arch.interop.hf_tokenizer import load_tokenizer
from dl_arch.interop.huggingface import import_bert, load_for_init_from, load_state_dict
from dl_arch.models.transformer import GPT, Bert
from dl_arch.testing import load_config

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine, they say; the fox did not listen.",
    "Naïve café owners don't serve crème brûlée at 9 o'clock!",
    "def main():\n    return quick_brown(fox) + 42\n",
    "Over the hills and far away, the dog slept in the sun.",
] * 4
PROBES = ["The lazy fox, naïve as ever, jumps! 42 times.", "def fox(dog):\n    return None",
          "unknown wörds: zebra quokka"]


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory) -> str:
    """A byte-level BPE trained on SENTENCES and a random 2-layer GPT-2, saved together
    (weights of std 0.2, so greedy continuations vary rather than repeat one token)."""
    folder = str(tmp_path_factory.mktemp("gpt2"))
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    end = "<|endoftext|>"
    tok = transformers.GPT2TokenizerFast(tokenizer_object=bpe, bos_token=end, eos_token=end,
                                         unk_token=end)
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2,
                                  n_head=4, initializer_range=0.2, bos_token_id=tok.bos_token_id,
                                  eos_token_id=tok.eos_token_id)
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> str:
    """A lower-casing WordPiece vocabulary trained on SENTENCES and a random BERT MLM."""
    folder = str(tmp_path_factory.mktemp("bert"))
    wp = tokenizers.BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(SENTENCES, vocab_size=150,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wp.save_model(folder)  # vocab.txt
    transformers.BertTokenizerFast(vocab=os.path.join(folder, "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(1)
    cfg = transformers.BertConfig(vocab_size=wp.get_vocab_size(), hidden_size=32,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=40)
    transformers.BertForMaskedLM(cfg).eval().save_pretrained(folder)
    return folder


def test_gpt2_ids_text_and_logits_agree_with_transformers(gpt2_folder):
    ours = load_tokenizer(gpt2_folder)
    ref = transformers.AutoTokenizer.from_pretrained(gpt2_folder)
    assert ours.vocab_size == len(ref)
    assert ours.bos_id == ours.eos_id == ours.pad_id == ref.eos_token_id
    for text in PROBES:
        ids = ours.encode(text)
        assert ids == ref(text)["input_ids"], text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True) == text  # lossless
    # decoding stops at the end token and drops the other specials
    ids = ours.encode(PROBES[0])
    assert ours.decode([*ids, ours.eos_id, *ids]) == PROBES[0]

    model = transformers.GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()
    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},smoke")
    params = load_for_init_from(f"hf:{gpt2_folder}", config.model)
    fields = {k: v for k, v in config.model.items() if k != "name"}
    tokens = np.asarray([ours.encode(PROBES[0])])
    with torch.no_grad():
        want = model(torch.tensor([ref(PROBES[0])["input_ids"]])).logits.numpy()
    got = GPT(**fields).apply({"params": params}, tokens)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-4, rtol=1e-4)


def test_bert_wordpiece_ids_offsets_text_and_logits_agree_with_transformers(bert_folder):
    ours = load_tokenizer(bert_folder)
    ref = transformers.AutoTokenizer.from_pretrained(bert_folder)
    assert (ours.bos_id, ours.eos_id, ours.pad_id, ours.mask_id) == (
        ref.cls_token_id, ref.sep_token_id, ref.pad_token_id, ref.mask_token_id)
    for text, max_len in [(PROBES[0], 24), (PROBES[2], 24), (SENTENCES[2], 8)]:  # 8: cut
        ids, offsets = ours.encode_sequence(text, max_len)
        want = ref(text, max_length=max_len, truncation=True, padding="max_length",
                   return_offsets_mapping=True)
        assert ids.tolist() == want["input_ids"], text
        assert offsets.tolist() == [list(o) for o in want["offset_mapping"]], text
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True), text
    assert ours.decode(ours.encode("The Quick fox, jumps.")) == "the quick fox, jumps."

    model = transformers.BertForMaskedLM.from_pretrained(bert_folder).eval()
    fields, params = import_bert(load_state_dict(os.path.join(bert_folder, "model.safetensors")),
                                 model.config)
    ids, _ = ours.encode_sequence(PROBES[0], 24)
    real = ids != ours.pad_id
    with torch.no_grad():
        want = model(torch.tensor(ids[None]), attention_mask=torch.tensor(real[None])).logits
    got = Bert(**fields, dropout_rate=0.0).apply({"params": params}, ids[None],
                                                 np.zeros_like(ids[None]))
    np.testing.assert_allclose(np.asarray(got)[0][real], want.numpy()[0][real], atol=1e-4,
                               rtol=1e-4)


def test_a_folder_with_only_the_legacy_vocab_file_gives_the_same_ids(bert_folder, tmp_path):
    with open(os.path.join(bert_folder, "vocab.txt")) as f:
        (tmp_path / "vocab.txt").write_text(f.read())
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer", '
                                                    '"do_lower_case": true}')
    legacy, full = load_tokenizer(str(tmp_path)), load_tokenizer(bert_folder)
    for text in PROBES:
        assert legacy.encode_sequence(text, 24)[0].tolist() == \
            full.encode_sequence(text, 24)[0].tolist()


def test_text_source_holds_the_tokenizers_ids(gpt2_folder, tmp_path):
    from dl_arch.config.resolve import resolve_config
    from dl_arch.data.pipeline import make_source

    path = tmp_path / "notes.txt"
    path.write_text("".join(SENTENCES))
    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},data={path},smoke")
    config = resolve_config(config)
    config.unlock()
    config.dataset.seq_len = 8
    source = make_source(config.dataset, "train", 0)
    cut = int(len(path.read_bytes()) * 0.95)  # split by position on the bytes
    want = load_tokenizer(gpt2_folder).encode(path.read_bytes()[:cut].decode())
    stream = np.concatenate([source[i]["inputs"] for i in range(len(source))])
    assert stream.tolist() == want[:len(stream)] and len(want) - len(stream) <= 8
    np.testing.assert_array_equal(source[1]["targets"][:-1], source[1]["inputs"][1:])


def test_missing_tokenizer_and_vocabulary_mismatch_are_one_line_errors(gpt2_folder, tmp_path):
    from dl_arch.data.tokenizers import run_tokenizer

    bare = tmp_path / "bare"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=97, n_positions=16, n_embd=8, n_layer=1, n_head=2)).save_pretrained(bare)
    config = load_config(f"configs/gpt2_imported.py:folder={bare},smoke")
    with pytest.raises(ConfigError, match=re.escape(
            f"config.dataset.tokenizer='hf:{bare}': '{bare}' has no tokenizer files")):
        run_tokenizer(config)

    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},smoke")
    config.model.vocab_size = 500
    with pytest.raises(ConfigError, match=re.escape(
            f"config.model.vocab_size=500 but the tokenizer of config.dataset.tokenizer="
            f"'hf:{gpt2_folder}' has 320 tokens; set --config.model.vocab_size=320")):
        run_tokenizer(config)

    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},smoke")
    config.dataset.tokenizer = "bytes"  # the checkpoint's ids would be read as bytes
    with pytest.raises(ConfigError, match=re.escape(
            f"set --config.dataset.tokenizer=hf:{gpt2_folder}")):
        run_tokenizer(config)
    with pytest.raises(ConfigError, match="needs folder="):
        load_config("configs/gpt2_imported.py:smoke")


def test_greedy_samples_equal_transformers_generate(gpt2_folder, capsys):
    from dl_arch.train.trainer import build_task

    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},smoke")
    config.sample.update(prompt="The lazy fox", temperature=0.0, length=8)
    task = build_task(config)
    texts = task.sample({"params": load_for_init_from(config.init_from, config.model)},
                        config.sample, "")
    ref = transformers.AutoTokenizer.from_pretrained(gpt2_folder)
    model = transformers.GPT2LMHeadModel.from_pretrained(gpt2_folder).eval()
    prompt = ref("The lazy fox", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(prompt, max_new_tokens=8, do_sample=False,
                             pad_token_id=ref.eos_token_id)
    assert len(set(out[0, prompt.shape[1]:].tolist())) >= 3  # a continuation worth comparing
    want = ref.decode(out[0], skip_special_tokens=True)
    if ref.eos_token_id in out[0, prompt.shape[1]:].tolist():  # ours stops at the end token
        first = out[0, prompt.shape[1]:].tolist().index(ref.eos_token_id)
        want = ref.decode(out[0, :prompt.shape[1] + first])
    assert texts == [want]
    assert want in capsys.readouterr().out
    assert task.decode_tokens(task.encode_text(PROBES[1])) == PROBES[1]  # for text evaluators
    assert task.encode_text("").tolist() == [ref.bos_token_id]


def test_launch_fine_tunes_then_samples_through_the_tokenizer(gpt2_folder, tmp_path, launch_cli):
    from dl_arch.train.loop import restore_for_inference, train_and_evaluate

    notes = tmp_path / "notes.txt"
    notes.write_text("".join(SENTENCES) * 3)
    spec = f"configs/gpt2_imported.py:folder={gpt2_folder},data={notes},smoke"
    workdir = str(tmp_path / "run")
    summary = train_and_evaluate(load_config(spec), workdir)
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    code, out, err = launch_cli(f"--config={spec}", f"--workdir={workdir}", "--sample",
                                "--config.sample.prompt=The dog", "--config.sample.temperature=0",
                                "--config.sample.length=6")
    assert code == 0, err[-2000:]
    config = load_config(spec)
    config.sample.update(prompt="The dog", temperature=0.0, length=6)
    task, variables = restore_for_inference(config, workdir)
    tok = load_tokenizer(gpt2_folder)
    prompt = tok.encode("The dog")
    greedy = jax.jit(lambda p, x: task.generate(p, x, 6, jax.random.key(0), temperature=0.0))
    ids = np.asarray(greedy(variables["params"], np.asarray([prompt])))[0]
    text = tok.decode([*prompt, *ids.tolist()])
    assert text.startswith("The dog") and text in out


def _greedy_text(folder: str, prompt: str, length: int) -> str:
    """`transformers`' greedy continuation of `prompt`, decoded as ours stops: at the first
    end token, specials dropped."""
    ref = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = ref(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=length, do_sample=False,
                             pad_token_id=ref.eos_token_id)[0].tolist()
    new = out[ids.shape[1]:]
    if ref.eos_token_id in new:
        out = out[:ids.shape[1] + new.index(ref.eos_token_id)]
    return ref.decode(out, skip_special_tokens=True)


def test_sample_straight_from_the_imported_folder_without_a_checkpoint(gpt2_folder, tmp_path,
                                                                      launch_cli):
    from dl_arch.train.loop import restore_for_inference

    spec = f"configs/gpt2_imported.py:folder={gpt2_folder}"
    empty = str(tmp_path / "none")
    _, variables = restore_for_inference(load_config(spec), empty)  # the weights as imported
    want = load_for_init_from(f"hf:{gpt2_folder}", load_config(spec).model)
    chex.assert_trees_all_close(variables["params"], want)
    code, out, err = launch_cli(f"--config={spec}", f"--workdir={empty}", "--sample",
                                "--config.sample.prompt=The lazy fox",
                                "--config.sample.temperature=0", "--config.sample.length=8")
    assert code == 0, err[-2000:]
    want = _greedy_text(gpt2_folder, "The lazy fox", 8)
    assert want.startswith("The lazy fox") and len(want) > len("The lazy fox ")
    assert want in out

    config = load_config("configs/gpt_text.py:smoke")  # no init_from: still one line
    with pytest.raises(ConfigError, match="holds no checkpoint to sample from"):
        restore_for_inference(config, empty)


def test_text_samples_evaluator_writes_text_through_the_tokenizer(gpt2_folder, tmp_path):
    from dl_arch.evaluators.base import EvalContext
    from dl_arch.registry import EVALUATORS
    from dl_arch.train.loop import build_task, eval_split

    notes = tmp_path / "notes.txt"
    notes.write_text("".join(SENTENCES) * 3)
    config = load_config(f"configs/gpt2_imported.py:folder={gpt2_folder},data={notes},smoke")
    assert "text_samples" in config.evaluators
    config.text_samples.update(temperature=0.0, length=8)
    task = build_task(config)
    params = load_for_init_from(config.init_from, config.model)
    batch = next(iter(eval_split(task.config, task)))
    ctx = EvalContext(variables={"params": params}, metrics={}, batch=batch, step=1, final=True,
                      workdir=str(tmp_path), eval_batches=lambda: eval_split(task.config, task))
    tok = load_tokenizer(gpt2_folder)

    text = EVALUATORS.get("text_samples")(task.config, task)(ctx).texts["samples"]
    head = np.asarray(batch["inputs"])[0, :config.text_samples.prompt_length]
    greedy = task.generate(params, head[None], 8, jax.random.key(0), temperature=0.0)
    body = text.split("-----\n", 1)[1]
    assert body == tok.decode([*head.tolist(), *np.asarray(greedy[0]).tolist()])
    assert body.startswith(tok.decode(head.tolist()))  # the eval window's text, not its ids

    task.config.text_samples.prompt = "The lazy fox"  # a given prompt: encoded by the tokenizer
    text = EVALUATORS.get("text_samples")(task.config, task)(ctx).texts["samples"]
    assert text.split("-----\n", 1)[1] == _greedy_text(gpt2_folder, "The lazy fox", 8)


# ----- text_table with a Hugging Face tokenizer: fine-tune an imported BERT on a CSV -----
def _sentence_table(tmp_path) -> tuple[str, list[str]]:
    """A CSV of SENTENCES' texts (commas, quotes, a newline, accents) labelled by whether
    they mention the fox."""
    import csv

    texts = SENTENCES[:5] + PROBES
    path = tmp_path / "sentences.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([t, int("fox" in t.lower())] for t in texts * 4)
    return str(path), texts * 4


def test_text_table_holds_the_wordpiece_ids_transformers_gives(bert_folder, tmp_path):
    import ml_collections

    from dl_arch.data.pipeline import make_source

    path, texts = _sentence_table(tmp_path)
    ref = transformers.AutoTokenizer.from_pretrained(bert_folder)
    fields = dict(name="text_table", path=path, eval_path=path, tokenizer=f"hf:{bert_folder}")
    for max_len in (12, 24):  # 12 cuts the long sentences ([SEP] kept), 24 pads most
        source = make_source(ml_collections.ConfigDict({**fields, "max_len": max_len}), "train", 0)
        got = source.get_batch(np.arange(len(source)))
        want = ref(texts, max_length=max_len, truncation=True, padding="max_length")
        assert got["inputs"].tolist() == want["input_ids"]
        assert got["lengths"].tolist() == np.sum(want["attention_mask"], 1).tolist()
        assert got["label"].tolist() == [int("fox" in t.lower()) for t in texts]
    assert (got["inputs"][:, 0] == ref.cls_token_id).all() and (got["inputs"] == 0).any()

    for tokenizer, max_len, message in [
            ("wordpiece", 24, "config.dataset.tokenizer='wordpiece'; use bytes, special_bytes "
                              "or hf:<Hugging Face model folder>"),
            (f"hf:{tmp_path}", 24, f"config.dataset.tokenizer='hf:{tmp_path}': '{tmp_path}' "
                                   "has no tokenizer files"),
            (f"hf:{bert_folder}", 2, f"config.dataset.max_len=2; tokenizer=hf:{bert_folder} adds "
                                     "2 special tokens, so it needs >= 3")]:
        cfg = ml_collections.ConfigDict({**fields, "tokenizer": tokenizer, "max_len": max_len})
        with pytest.raises(ConfigError, match=re.escape(message)):
            make_source(cfg, "train", 0)


def _bert_table_config(bert_folder: str, data: str):
    """bert_finetune_offline.py on a CSV, its model the folder's BERT, tokenised by the
    folder's tokenizer and initialised from its weights."""
    from dl_arch.interop.huggingface import bert_fields
    from dl_arch.interop.huggingface import load_config as load_hf_config

    config = load_config(f"configs/bert_finetune_offline.py:data={data},classes=2,max_len=24,"
                         "smoke")
    config.model.update(bert_fields(load_hf_config(os.path.join(bert_folder, "config.json"))),
                        pool="cls", dropout_rate=0.0)
    config.dataset.tokenizer = config.init_from = f"hf:{bert_folder}"
    config.dataset.eval_fraction = 0.25
    config.num_train_steps = 6
    return config


def test_an_imported_bert_fine_tunes_on_a_csv_through_its_tokenizer(bert_folder, tmp_path,
                                                                     caplog):
    import logging

    from dl_arch.train.loop import train_and_evaluate
    from dl_arch.train.trainer import build_task

    path, _ = _sentence_table(tmp_path)
    config = _bert_table_config(bert_folder, path)
    with caplog.at_level(logging.INFO):
        summary = train_and_evaluate(config, str(tmp_path / "run"))
    assert summary["completed"] and np.isfinite(summary["eval/loss"])
    loaded = " ".join(r.getMessage() for r in caplog.records if "init_from" in r.getMessage())
    assert "skipped 0" in loaded and re.search(r"loaded [1-9]\d* tensors", loaded), loaded

    config = _bert_table_config(bert_folder, path)  # the same checks as the language models
    config.init_from = ""
    config.model.vocab_size = 200
    with pytest.raises(ConfigError, match=re.escape(
            "config.model.vocab_size=200 but the tokenizer of config.dataset.tokenizer=")):
        build_task(config)
    config = _bert_table_config(bert_folder, path)
    config.dataset.tokenizer = "special_bytes"  # bytes fed to a WordPiece checkpoint
    with pytest.raises(ConfigError, match=re.escape(
            f"set --config.dataset.tokenizer=hf:{bert_folder}")):
        build_task(config)
