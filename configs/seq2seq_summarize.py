"""RNN encoder-decoder with attention summarising generated reports (offline; CPU).

    python launch.py --config=configs/seq2seq_summarize.py --workdir=runs/summarize_rnn
    python launch.py --config=configs/seq2seq_summarize.py:smoke --workdir=/tmp/s2s_sum_smoke

The same data and evaluation as configs/transformer_summarize.py (its `reports_data`), so
the two `eval/rougeL_beam` figures compare the architectures; both log the lead baseline.
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from configs.transformer_summarize import reports_data
from dl_arch.data.sources.reports import tokenizer


def get_config(arg: str | None = None):
    opts = parse_options(arg, cell="gru", hidden=128, steps=3000, lead=3, lr=2e-3)
    c = base_config()
    c.task = dict(
        name="summarization",
        label_smoothing=0.1,
        beam_size=4,
        length_penalty=0.6,
        decode_len=0,  # 0 = dataset summary_len
    )
    reports_data(c, opts.lead)
    vocab = tokenizer().vocab_size  # the reports' word vocabulary (4 specials)
    c.model = dict(
        name="seq2seq_attention",
        src_vocab_size=vocab,
        tgt_vocab_size=vocab,
        embed_dim=64,
        hidden_size=opts.hidden,  # per encoder direction, and the decoder
        attention_dim=opts.hidden,
        readout_dim=opts.hidden,
        cell=opts.cell,
        encoder_layers=1,
        dropout=0.1,
    )
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.embed_dim = 16
        c.model.hidden_size = c.model.attention_dim = c.model.readout_dim = 32
        c.dataset.num_eval_examples = 16
        c.summaries.num_examples = 8
        c.task.beam_size = 2
        shrink_for_smoke(c)
        c.batch_size = 8
    return c
