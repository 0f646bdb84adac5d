"""Encoder-decoder Transformer on an offline procedural translation task (trains on CPU).

    python launch.py --config=configs/transformer_translate.py --workdir=runs/translate
    python launch.py --config=configs/transformer_translate.py:smoke --workdir=/tmp/tr_smoke
    python launch.py --config=configs/transformer_translate.py --workdir=runs/translate \
        --sample --config.sample.prompt="<source sentence>|<another one>"

The target language reorders every sentence (verb-final, noun-adjectives-determiner) and
translates each word through a fixed lexicon; BLEU (sacrebleu) of greedy and beam search
is logged at each evaluation (`eval/bleu_beam`, `eval/bleu_greedy`).
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, emb_dim=64, layers=2, steps=2000, pre_ln=False)
    c = base_config()
    c.task = dict(
        name="translation",
        label_smoothing=0.1,  # as in the paper
        beam_size=4,
        length_penalty=0.6,  # GNMT alpha
        bleu_examples=128,  # eval sentences decoded for BLEU at each evaluation
        decode_len=0,  # 0 = dataset max_len
    )
    c.model = dict(
        name="transformer_base",
        vocab_size=304,  # the procedural language's shared word vocabulary (4 specials)
        emb_dim=opts.emb_dim,
        num_heads=4,
        num_encoder_layers=opts.layers,
        num_decoder_layers=opts.layers,
        mlp_dim=4 * opts.emb_dim,
        max_len=32,
        dropout_rate=0.1,
        pre_ln=opts.pre_ln,  # False = the original post-LN Transformer
        position="sinusoidal",
        attention_impl="xla",  # xla | cudnn | auto | naive
    )
    c.dataset.name = "synthetic_translation"
    c.dataset.num_topics = 4  # procedural language: 4 topics x 12 words per category
    c.dataset.words_per_topic = 12
    c.dataset.language_seed = 0
    c.dataset.max_adjectives = 2
    c.dataset.pp_prob = 0.5  # chance of a prepositional phrase
    c.dataset.max_len = 32  # tokens per sentence incl. <eos>
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
        c.task.bleu_examples = 8
        c.task.beam_size = 2
        shrink_for_smoke(c)
        c.batch_size = 8
    return c
