"""BERT extractive QA on SQuAD v1.1 (TFDS `squad`) or your SQuAD-format JSON file.

    python launch.py --config=configs/bert_squad.py:hf=/models/bert-base-uncased \
        --workdir=runs/bert_squad
    python launch.py --config=configs/bert_squad.py:hf=/models/bert-base-uncased,data=qa.json \
        --workdir=runs/bert_qa_mine
    python launch.py --config=configs/bert_squad.py --workdir=runs/bert_squad_bytes
    python launch.py --config=configs/bert_squad.py:smoke --workdir=/tmp/bert_squad_smoke

`hf=<folder>`: a Hugging Face BERT folder (config.json, model.safetensors or
pytorch_model.bin, and its tokenizer files, as `save_pretrained` writes them): the model
takes the folder's shapes, `init_from=hf:<folder>` loads its encoder (the span head is new)
and its WordPiece tokenizer makes the ids; windows of 384 tokens every 128 passage tokens,
lr 3e-5 for two epochs (the BERT paper's SQuAD set-up). Without `hf`, a small BERT learns
from scratch on UTF-8 bytes (windows of 512 bytes). `data=<file.json>` reads your questions
(data -> paragraphs -> context, qas -> question, answers -> text, answer_start) instead of
TFDS; 10% of its paragraphs are held out for eval unless --config.dataset.eval_path is set.
TFDS needs `squad` prepared once (TensorFlow and network). The input is the BERT paper's;
`--config.model.question_match=True` adds the exact-match feature of bert_qa_offline.py.
"""

import os

from configs.base import base_config, parse_options, shrink_for_smoke


def hf_model(folder: str) -> dict:
    """The span model with the shapes of the BERT in `folder` (so init_from loads it all)."""
    from dl_arch.interop.huggingface import bert_fields, load_config

    fields = bert_fields(load_config(os.path.join(folder, "config.json")))
    fields.pop("scan")
    return dict(name="bert_span_base", **fields)


def get_config(arg: str | None = None):
    opts = parse_options(arg, hf="", data="", steps=5500)
    c = base_config()
    c.task = dict(name="question_answering", max_answer_len=30)
    if opts.hf:
        c.model = hf_model(opts.hf)
        c.init_from = f"hf:{opts.hf}"
        window = dict(tokenizer=f"hf:{opts.hf}", max_len=384, doc_stride=128,
                      max_query_len=64, max_context_len=1024)
    else:
        c.model = dict(name="bert_span_mini", vocab_size=260, max_len=512)
        window = dict(tokenizer="bytes", max_len=512, doc_stride=256, max_query_len=128,
                      max_context_len=2048)
    c.dataset = dict(name="tfds_squad", train_split="train", eval_split="validation",
                     max_windows=4, **window)
    if opts.data:
        c.dataset = dict(name="squad_json", path=opts.data, **window, max_windows=4)
    c.batch_size = 32
    c.num_train_steps = opts.steps  # ~2 epochs of SQuAD's 87,599 questions
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 3e-5 if opts.hf else 2e-4
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = opts.steps // 10
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        if not opts.hf:
            c.model.update(name="bert_span_tiny", hidden=16, mlp_dim=32, max_len=64)
        c.dataset.update(max_len=64, doc_stride=24, max_query_len=16, max_context_len=256)
        if not opts.data:
            c.dataset.update(num_train_examples=8, num_eval_examples=4)
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
        c.optimizer.warmup_steps = 1
    return c
