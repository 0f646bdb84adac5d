"""BERT masked-LM pretraining on unlabelled sentences of a procedural language (offline).

    python launch.py --config=configs/bert_pretrain_offline.py --workdir=runs/bert_pretrain
    python launch.py --config=configs/bert_finetune_offline.py:init_from=runs/bert_pretrain \
        --workdir=runs/bert_finetune
    python launch.py --config=configs/bert_scratch_offline.py --workdir=runs/bert_scratch

15% of content tokens are selected (80% -> <mask>, 10% random, 10% kept). Sentences keep
to one topic, so predicting a masked word teaches the encoder which words share a topic:
the knowledge the fine-tuning config then needs with only a few labelled sentences.
"""

from configs.base import base_config, parse_options, shrink_for_smoke

LANGUAGE = dict(  # the procedural language shared by the three offline BERT configs
    name="synthetic_sentences",
    num_topics=8,
    words_per_topic=10,  # per category (noun, verb, adjective): 240 topic words
    language_seed=0,
    max_adjectives=2,
    noise=0.05,  # chance that a content word is off-topic
    max_len=24,
)
VOCAB = 4 + 2 * (3 * 8 * 10 + 6)  # specials + both languages' words (see translation.py)


def bert_model(head: str, smoke: bool) -> dict:
    """The small BERT of the offline configs (same shapes for pretraining and fine-tuning)."""
    m = dict(name="bert_mini", vocab_size=VOCAB, max_len=LANGUAGE["max_len"], head=head,
             num_classes=LANGUAGE["num_topics"], hidden=128, num_layers=2, num_heads=4,
             mlp_dim=512, dropout_rate=0.1,
             pool="mean")  # [CLS] gets no MLM training signal; mean pooling reuses what did
    if smoke:
        m.update(hidden=32, num_layers=1, num_heads=2, mlp_dim=64)
    return m


def get_config(arg: str | None = None):
    opts = parse_options(arg, steps=2000)
    c = base_config()
    c.task = dict(name="masked_lm", mask_rate=0.15, mask_token_prob=0.8, random_token_prob=0.1,
                  mask_id=3, num_special=4)
    c.model = bert_model("mlm", opts.smoke)
    c.dataset.update(LANGUAGE)
    c.dataset.num_train_examples = None  # endless unlabelled text
    c.dataset.num_eval_examples = 1024
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        shrink_for_smoke(c)
        c.batch_size = 16
    return c
