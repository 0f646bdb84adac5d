"""Extractive QA with BERT on generated biographies (offline): MLM pretraining on the
passages, then span fine-tuning on a small labelled set, against the same model from scratch.

    python launch.py --config=configs/bert_qa_offline.py:pretrain --workdir=runs/bert_qa_pre
    python launch.py --config=configs/bert_qa_offline.py:init_from=runs/bert_qa_pre \
        --workdir=runs/bert_qa_ft
    python launch.py --config=configs/bert_qa_offline.py --workdir=runs/bert_qa_scratch
    python launch.py --config=configs/bert_qa_offline.py --workdir=runs/bert_qa_ft --sample \
        --config.sample.context='...' --config.sample.question='where was ... born ?'

`pretrain` is the masked-LM recipe of `bert_pretrain_offline.py` (task, optimiser, the same
small BERT) on the unlabelled passages of the `reading_comprehension` generator
(`synthetic_passages`: same words, same kind of text, windows as long as the QA's). The
fine-tuning run loads its encoder through `init_from` (the MLM head is left out, `span_head`
and `match_embed` are new) and trains on `labelled` questions; without `init_from` the same
run starts from random weights, so the two runs' `eval/f1` differ by what pretraining bought.
`question_match` marks the passage words that are in the question (see `span_qa`): without
it this small encoder never learns to find the question's name and plateaus near F1 69
(docs/results/transformer_uses.md). Passages longer than one window are read in
overlapping windows (`max_len`, `doc_stride`).
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from configs.bert_pretrain_offline import get_config as mlm_config
from dl_arch.data.sources.reading_comprehension import passage_vocab_size

MAX_LEN = 64  # tokens per window, and per pretraining example


def span_model(smoke: bool) -> dict:
    """The BERT of `bert_pretrain_offline.py` (same shapes) with the span head."""
    m = dict(name="bert_span_mini", vocab_size=passage_vocab_size(), max_len=MAX_LEN,
             hidden=128, num_layers=2, num_heads=4, mlp_dim=512, dropout_rate=0.1,
             question_match=True)
    if smoke:
        m.update(hidden=32, num_layers=1, num_heads=2, mlp_dim=64)
    return m


def pretrain_config(opts) -> dict:
    """Masked-LM pretraining on the unlabelled passages (`bert_pretrain_offline`'s recipe)."""
    c = mlm_config(f"steps={opts.steps or 1200}" + (",smoke" if opts.smoke else ""))
    m = span_model(opts.smoke)
    c.model.update({k: m[k] for k in ("vocab_size", "max_len", "hidden", "num_layers",
                                      "num_heads", "mlp_dim")})
    c.dataset = dict(name="synthetic_passages", max_len=MAX_LEN, num_train_examples=None,
                     num_eval_examples=64 if opts.smoke else 512)
    if opts.smoke:
        shrink_for_smoke(c, steps=opts.steps or 20)
        c.batch_size = 16
    return c


def get_config(arg: str | None = None):
    opts = parse_options(arg, pretrain=False, init_from="", labelled=2000, steps=0,
                         eval_examples=1000)
    if opts.pretrain:
        return pretrain_config(opts)
    c = base_config()
    c.task = dict(name="question_answering", max_answer_len=8)
    c.model = span_model(opts.smoke)
    c.dataset = dict(name="reading_comprehension", max_len=MAX_LEN, doc_stride=24,
                     max_windows=4, num_train_examples=opts.labelled or None,  # 0: endless
                     num_eval_examples=opts.eval_examples)
    c.init_from = opts.init_from  # workdir of the :pretrain run ('' = from scratch)
    c.batch_size = 32
    c.num_train_steps = opts.steps or 1500
    c.log_every_steps = 100
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 1500
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        shrink_for_smoke(c, steps=opts.steps or 20)
        c.batch_size = 8
        c.dataset.num_eval_examples = 16
    return c
