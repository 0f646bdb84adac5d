"""Attention encoder-decoder translating dates in words to ISO 8601 (offline, character level).

    python launch.py --config=configs/seq2seq_dates.py --workdir=runs/seq2seq_dates
    python launch.py --config=configs/seq2seq_dates.py:smoke --workdir=/tmp/s2s_smoke

"the 3rd of march, 1991" -> "1991-03-03"; eval reports exact match of greedy and beam
decodes; attention.png shows where each output character looked.

    python launch.py --config=configs/seq2seq_dates.py:data=pairs.tsv,vocab=1000 \
        --workdir=runs/mine

`data=` translates your TSV of sentence pairs instead (the `parallel_text` source: source
TAB target a line; 10% held out for eval): both sides become ids of one SentencePiece
model of `vocab` pieces trained on the train split (cached in ~/.cache/dl_arch/spm), cut to
`max_len` tokens; attention.png then labels the axes with token ids.
"""

import ml_collections

from configs.base import base_config, own_data, parse_options, shrink_for_smoke
from dl_arch.data.sources.sequence_tasks import DATE_CHARS, DATE_VOCAB_SIZE


def get_config(arg: str | None = None):
    opts = parse_options(arg, cell="gru", hidden=128, steps=3000, beam=4, data="", vocab=8000,
                         max_len=64)
    c = base_config()
    c.task = dict(
        name="seq2seq",
        beam_size=opts.beam,  # eval/exact_match_beam when > 1
        length_penalty=0.6,
    )
    # attention.png at every eval; token 3+i is DATE_CHARS[i]: labels of its axes
    c.attention_map = ml_collections.ConfigDict({"charset": DATE_CHARS})
    c.model = dict(
        name="seq2seq_attention",
        src_vocab_size=DATE_VOCAB_SIZE,
        tgt_vocab_size=DATE_VOCAB_SIZE,
        embed_dim=32,
        hidden_size=opts.hidden,  # per encoder direction, and the decoder
        attention_dim=opts.hidden,
        readout_dim=opts.hidden,
        cell=opts.cell,
        dropout=0.0,
    )
    c.dataset.name = "dates_to_iso"
    c.dataset.num_train_examples = None
    c.dataset.num_eval_examples = 1000
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.embed_dim = 8
        c.model.hidden_size = c.model.attention_dim = c.model.readout_dim = 16
        c.task.beam_size = 2
        c.dataset.num_eval_examples = 64
        shrink_for_smoke(c)
    if opts.data:  # one SentencePiece vocabulary for both sides
        c.model.src_vocab_size = c.model.tgt_vocab_size = opts.vocab
        c.attention_map.charset = ""  # the ids are not DATE_CHARS
        own_data(c, opts.data, {"tsv": "parallel_text"}, vocab_size=opts.vocab,
                 max_len=opts.max_len)
    return c
