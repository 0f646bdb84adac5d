"""Byte-level GPT on TFDS tiny_shakespeare (prepare the dataset once), as in nanoGPT's
character-level example: 6 layers, 6 heads, 384 wide, context 256.

    python launch.py --config=configs/gpt_tiny_shakespeare.py --workdir=runs/gpt_shakespeare
    python launch.py --config=configs/gpt_tiny_shakespeare.py --workdir=runs/gpt_shakespeare \
        --sample --config.sample.prompt="ROMEO:" --config.sample.top_k=20
    python launch.py --config=configs/gpt_tiny_shakespeare.py:smoke --workdir=/tmp/gpt_ts
"""

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, steps=5000, seq_len=256)
    c = base_config()
    c.task = dict(name="causal_lm")
    c.evaluators = ("text_samples",)  # samples.txt at the end of the run
    c.text_samples = ml_collections.ConfigDict(dict(length=300, temperature=0.8, top_p=0.95))
    c.model = dict(name="gpt_micro", vocab_size=256, emb_dim=384, num_layers=6, num_heads=6,
                   mlp_dim=1536, max_len=opts.seq_len + 512, dropout_rate=0.2,
                   attention_impl="auto")
    c.dataset.name = "text"
    c.dataset.tfds_name = "tiny_shakespeare"
    c.dataset.tfds_feature = "text"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"
    c.dataset.seq_len = opts.seq_len
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.weight_decay = 0.1
    c.optimizer.b2 = 0.99
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="ROMEO:", length=500, temperature=0.8, top_k=0, top_p=0.95,
                    num_samples=1, seed=0)
    if opts.smoke:
        c.model.update(name="gpt_nano", emb_dim=16, num_layers=1, num_heads=2, mlp_dim=32,
                       max_len=64)
        c.dataset.seq_len = 16
        c.text_samples.length = 16
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
