"""Encoder-decoder Transformer on an offline procedural translation task (trains on CPU).

    python launch.py --config=configs/transformer_translate.py --workdir=runs/translate
    python launch.py --config=configs/transformer_translate.py:smoke --workdir=/tmp/tr_smoke
    python launch.py --config=configs/transformer_translate.py --workdir=runs/translate \
        --sample --config.sample.prompt="<source sentence>|<another one>"

The target language reorders every sentence (verb-final, noun-adjectives-determiner) and
translates each word through a fixed lexicon; BLEU (sacrebleu) of greedy and beam search
is logged at each evaluation (`eval/bleu_beam`, `eval/bleu_greedy`).

    python launch.py --config=configs/transformer_translate.py:data=pairs.tsv,vocab=4000 \
        --workdir=runs/mine

`data=` translates your TSV of sentence pairs instead (the `parallel_text` source: source
TAB target a line; 10% held out for eval), tokenised by a SentencePiece model of `vocab`
pieces trained on its train split (cached in ~/.cache/dl_arch/spm); sentences are cut to
`max_len` tokens (<eos> included).
"""

import ml_collections

from configs.base import base_config, own_data, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, emb_dim=64, layers=2, steps=2000, pre_ln=False, data="",
                         vocab=8000, max_len=32)
    c = base_config()
    c.task = dict(
        name="translation",
        label_smoothing=0.1,  # as in the paper
        beam_size=4,
        length_penalty=0.6,  # GNMT alpha
        decode_len=0,  # 0 = dataset max_len
    )
    c.evaluators = ("translations",)  # BLEU and translations.txt at each evaluation
    c.translations = ml_collections.ConfigDict(dict(
        num_examples=128,  # eval sentences decoded for BLEU
        num_shown=10))  # of those, written to translations.txt
    c.model = dict(
        name="transformer_base",
        vocab_size=304,  # the procedural language's shared word vocabulary (4 specials)
        emb_dim=opts.emb_dim,
        num_heads=4,
        num_encoder_layers=opts.layers,
        num_decoder_layers=opts.layers,
        mlp_dim=4 * opts.emb_dim,
        max_len=opts.max_len,  # positions: the longest sentence
        dropout_rate=0.1,
        pre_ln=opts.pre_ln,  # False = the original post-LN Transformer
        position="sinusoidal",
        attention_impl="xla",  # xla | cudnn | auto | naive | blocked
    )
    c.dataset.name = "synthetic_translation"
    c.dataset.num_topics = 4  # procedural language: 4 topics x 12 words per category
    c.dataset.words_per_topic = 12
    c.dataset.language_seed = 0
    c.dataset.max_adjectives = 2
    c.dataset.pp_prob = 0.5  # chance of a prepositional phrase
    c.dataset.max_len = opts.max_len  # tokens per sentence incl. <eos>
    c.dataset.num_train_examples = None  # endless: fresh sentences every batch
    c.dataset.num_eval_examples = 512
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98  # the paper's Adam betas
    c.optimizer.eps = 1e-9
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="")  # '|'-separated source sentences for --sample
    if opts.smoke:
        c.model.emb_dim = 32
        c.model.mlp_dim = 64
        c.model.num_encoder_layers = c.model.num_decoder_layers = 1
        c.dataset.num_eval_examples = 16
        c.translations.num_examples = 8
        c.task.beam_size = 2
        shrink_for_smoke(c)
        c.batch_size = 8
    if opts.data:  # one SentencePiece vocabulary for both sides and the model
        c.model.vocab_size = opts.vocab
        own_data(c, opts.data, {"tsv": "parallel_text"}, vocab_size=opts.vocab)
    return c
