"""Transformer-base summarising TFDS CNN/DailyMail (or XSum) news with a SentencePiece
vocabulary trained locally on the training text (prepare the TFDS dataset once:
`dl_arch[tfds]`).

    python launch.py --config=configs/transformer_cnn_dailymail.py --workdir=runs/cnn_dm
    python launch.py --config=configs/transformer_cnn_dailymail.py:data=xsum --workdir=runs/xsum
    python launch.py --config=configs/transformer_cnn_dailymail.py:smoke --workdir=/tmp/cnn_smoke

Documents are cut to 512 tokens; the `summaries` evaluator logs ROUGE-1/2/L of beam and
greedy summaries beside the lead baseline (lead-3 for CNN/DailyMail, lead-1 for XSum).
"""

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke

DATASETS = {  # tfds name, eval split, summary tokens, lead baseline sentences
    "cnn_dailymail": ("cnn_dailymail", "validation", 128, 3),
    "xsum": ("xsum", "validation", 64, 1),
}


def get_config(arg: str | None = None):
    opts = parse_options(arg, data="cnn_dailymail", vocab=16000, steps=200_000)
    if opts.data not in DATASETS:
        raise ValueError(f"config option data='{opts.data}'; known: {', '.join(DATASETS)}")
    tfds_name, eval_split, summary_len, lead = DATASETS[opts.data]
    c = base_config()
    c.task = dict(name="summarization", label_smoothing=0.1, beam_size=4,
                  length_penalty=0.6, decode_len=0)  # 0 = dataset summary_len
    c.evaluators = ("summaries",)
    c.summaries = ml_collections.ConfigDict(dict(
        num_examples=1000,  # validation documents summarised for ROUGE
        lead_sentences=lead))  # the lead baseline
    c.model = dict(name="transformer_base",
                   vocab_size=opts.vocab,  # shared document/summary SentencePiece vocabulary
                   max_len=512, dropout_rate=0.1, attention_impl="auto")
    c.dataset.name = "tfds_summarization"
    c.dataset.tfds_name = tfds_name
    c.dataset.document_key = ""  # '' = the dataset's own feature names
    c.dataset.summary_key = ""
    c.dataset.train_split = "train"
    c.dataset.eval_split = eval_split
    c.dataset.vocab_size = opts.vocab  # SentencePiece model trained on the training text
    c.dataset.tokenizer_sentences = 400_000  # sentences (documents and summaries) it reads
    c.dataset.tokenizer_dir = ""  # '' = ~/.cache/dl_arch/spm
    c.dataset.max_len = 512  # document tokens (longer ones are cut)
    c.dataset.summary_len = summary_len
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 200
    c.eval_every_steps = 10_000
    c.checkpoint_every_steps = 5000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 5e-4
    c.optimizer.b2 = 0.98
    c.optimizer.eps = 1e-9
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 4000
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="")  # '|'-separated documents for --sample
    if opts.smoke:
        c.model.name = "transformer_tiny"
        c.model.num_encoder_layers = c.model.num_decoder_layers = 1
        c.model.emb_dim, c.model.mlp_dim = 32, 64
        c.model.vocab_size = c.dataset.vocab_size = 64
        c.model.max_len = c.dataset.max_len = 32
        c.dataset.summary_len = 12
        c.dataset.tokenizer_sentences = 2000
        c.dataset.eval_split = "test"
        c.summaries.num_examples = 4
        c.task.beam_size = 2
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
