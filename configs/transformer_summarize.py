"""Encoder-decoder Transformer summarising generated reports (offline; trains on a CPU).

    python launch.py --config=configs/transformer_summarize.py --workdir=runs/summarize
    python launch.py --config=configs/transformer_summarize.py:smoke --workdir=/tmp/sum_smoke
    python launch.py --config=configs/transformer_summarize.py --workdir=runs/summarize \
        --sample --config.sample.prompt="<a report>|<another one>"
    python launch.py --config=configs/transformer_summarize.py:data=docs.tsv,vocab=4000 \
        --workdir=runs/summarize_mine

Each report (a football match, a city's weather, a company's sales) hides its few facts
among distractor sentences; the summary states them in a fixed short form, deciding what
no sentence says (who won, warmer or cooler, rose or fell). At each evaluation the
`summaries` evaluator logs ROUGE-1/2/L of beam and greedy summaries and of the lead
baseline, the first `lead` sentences (`eval/rougeL_beam`, `eval/rougeL_lead`, ...), and
writes examples to summaries.txt. configs/seq2seq_summarize.py trains the RNN with
attention on the same data. `data=` summarises your TSV of `document<TAB>summary` lines
instead (the `parallel_text` source: one SentencePiece vocabulary of `vocab` pieces trained on
the train split).
"""

import ml_collections

from configs.base import base_config, own_data, parse_options, shrink_for_smoke
from dl_arch.data.sources.reports import tokenizer


def reports_data(c: ml_collections.ConfigDict, lead: int) -> ml_collections.ConfigDict:
    """The offline reports and their evaluation, shared with configs/seq2seq_summarize.py."""
    c.dataset.name = "reports"
    c.dataset.kinds = ("match", "weather", "sales")
    c.dataset.num_distractors = 4  # shuffled among the fact sentences
    c.dataset.lead_distractors = 1  # a distractor opens every report
    c.dataset.max_len = 96  # report tokens incl. <eos>
    c.dataset.summary_len = 12  # summary tokens incl. <eos>
    c.dataset.num_train_examples = None  # endless: fresh reports every batch
    c.dataset.num_eval_examples = 512
    c.evaluators = ("summaries",)
    c.summaries = ml_collections.ConfigDict(dict(
        num_examples=512,  # eval reports summarised for ROUGE
        num_shown=5,  # of those, written to summaries.txt
        lead_sentences=lead,  # the lead baseline: the first k sentences
        stem=True))  # rouge-score's Porter stemmer
    c.sample = dict(prompt="")  # '|'-separated reports for --sample
    return c


def get_config(arg: str | None = None):
    opts = parse_options(arg, emb_dim=64, layers=2, steps=3000, lead=3, lr=2e-3, data="", vocab=4000)
    c = base_config()
    c.task = dict(
        name="summarization",
        label_smoothing=0.1,
        beam_size=4,
        length_penalty=0.6,  # GNMT alpha
        decode_len=0,  # 0 = dataset summary_len
    )
    reports_data(c, opts.lead)
    c.model = dict(
        name="transformer_base",
        vocab_size=tokenizer().vocab_size,  # the reports' word vocabulary (4 specials)
        emb_dim=opts.emb_dim,
        num_heads=4,
        num_encoder_layers=opts.layers,
        num_decoder_layers=opts.layers,
        mlp_dim=4 * opts.emb_dim,
        max_len=96,  # positions: the longest report
        dropout_rate=0.1,
        pre_ln=False,
        position="sinusoidal",
        attention_impl="xla",
    )
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.b2 = 0.98
    c.optimizer.eps = 1e-9
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.emb_dim = 32
        c.model.mlp_dim = 64
        c.model.num_encoder_layers = c.model.num_decoder_layers = 1
        c.dataset.num_eval_examples = 16
        c.summaries.num_examples = 8
        c.task.beam_size = 2
        shrink_for_smoke(c)
        c.batch_size = 8
    if opts.data:  # one SentencePiece vocabulary for documents, summaries and the model
        c.model.vocab_size = opts.vocab
        own_data(c, opts.data, {"tsv": "parallel_text"}, vocab_size=opts.vocab)
    return c
