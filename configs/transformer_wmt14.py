"""Transformer-base on TFDS WMT14 (or TED) translation with a SentencePiece vocabulary
trained locally on the training text (prepare the TFDS dataset once: `dl_arch[tfds]`).

    python launch.py --config=configs/transformer_wmt14.py --workdir=runs/wmt14_de_en
    python launch.py --config=configs/transformer_wmt14.py:pair=ted --workdir=runs/ted_pt_en
    python launch.py --config=configs/transformer_wmt14.py:smoke --workdir=/tmp/wmt_smoke
"""

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke

PAIRS = {  # tfds name, source feature, target feature, eval split
    "wmt14": ("wmt14_translate/de-en", "de", "en", "validation"),
    "ted": ("ted_hrlr_translate/pt_to_en", "pt", "en", "validation"),
}


def get_config(arg: str | None = None):
    opts = parse_options(arg, pair="wmt14", vocab=32000, steps=100_000, big=False)
    if opts.pair not in PAIRS:
        raise ValueError(f"config option pair='{opts.pair}'; known: {', '.join(PAIRS)}")
    tfds_name, src, tgt, eval_split = PAIRS[opts.pair]
    c = base_config()
    c.task = dict(name="translation", label_smoothing=0.1, beam_size=4, length_penalty=0.6,
                  decode_len=0)
    c.evaluators = ("translations",)  # BLEU and translations.txt at each evaluation
    c.translations = ml_collections.ConfigDict(dict(num_examples=1000))  # sentences for BLEU
    c.model = dict(name="transformer_big" if opts.big else "transformer_base",
                   vocab_size=opts.vocab,  # shared source/target SentencePiece vocabulary
                   max_len=128, dropout_rate=0.1, attention_impl="auto")
    c.dataset.name = "tfds_translation"
    c.dataset.tfds_name = tfds_name
    c.dataset.source_key = src
    c.dataset.target_key = tgt
    c.dataset.train_split = "train"
    c.dataset.eval_split = eval_split
    c.dataset.vocab_size = opts.vocab  # SentencePiece model trained on the training text
    c.dataset.tokenizer_sentences = 400_000  # sentences (both sides) used to train it
    c.dataset.tokenizer_dir = ""  # '' = ~/.cache/dl_arch/spm
    c.dataset.max_len = 128  # subword tokens per sentence (longer ones are cut)
    c.batch_size = 256
    c.num_train_steps = opts.steps
    c.log_every_steps = 200
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 7e-4
    c.optimizer.b2 = 0.98
    c.optimizer.eps = 1e-9
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 4000
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        c.model.name = "transformer_tiny"
        c.model.num_encoder_layers = c.model.num_decoder_layers = 1
        c.model.emb_dim, c.model.mlp_dim = 32, 64
        c.model.vocab_size = c.dataset.vocab_size = 64
        c.model.max_len = c.dataset.max_len = 24
        c.dataset.tokenizer_sentences = 2000
        c.dataset.eval_split = "test"
        c.translations.num_examples = 4
        c.task.beam_size = 2
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
