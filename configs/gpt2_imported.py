"""An imported Hugging Face GPT-2 with its own tokenizer: fine-tune it on your text, sample it.

    python launch.py --config=configs/gpt2_imported.py:folder=~/gpt2,data=~/notes.txt \
        --workdir=runs/gpt2_notes
    python launch.py --config=configs/gpt2_imported.py:folder=~/gpt2,data=~/notes.txt \
        --workdir=runs/gpt2_notes --sample --config.sample.prompt="Dear Ada,"
    python launch.py --config=configs/gpt2_imported.py:folder=~/gpt2,smoke --workdir=/tmp/gpt2
    python launch.py --config=configs/gpt2_imported.py:folder=~/gpt2 --sample \
        --workdir=/tmp/gpt2_none --config.sample.prompt="Once upon a time"

The last command samples the imported model as it is: a workdir without a checkpoint
restores the weights of `init_from`, so no training run is needed first.

`folder` is what `save_pretrained` writes for a GPT-2 model and its tokenizer: config.json,
model.safetensors (or pytorch_model.bin) and tokenizer.json (or vocab.json + merges.txt). It
is named once: the weights load through `init_from=hf:<folder>`, the text is tokenised and
the samples decoded with the tokenizer of the same folder (`dataset.tokenizer=hf:<folder>`),
and the model's shape is read from its config.json, so `config.model` matches the checkpoint.
`data` is a text file or glob ('' = this Python's standard-library .py files, offline); one
file's last 5% is the eval split. `steps=0` only evaluates the imported model. At the end of
a run `samples.txt` holds a sample continuing the first eval window (`text_samples`), decoded
by the same tokenizer.
"""

import os

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.config.errors import ConfigError


def gpt2_model(folder: str) -> dict:
    """`config.model` for the GPT-2 checkpoint in `folder` (its config.json's shape)."""
    from dl_arch.interop.huggingface import gpt2_fields, load_config

    cfg = load_config(os.path.join(folder, "config.json"))
    if cfg.get("model_type") != "gpt2":
        raise ConfigError(f"configs/gpt2_imported.py: folder={folder} holds a "
                          f"{cfg.get('model_type')!r} model; give a GPT-2 folder")
    return dict(name="gpt2_small", **gpt2_fields(cfg), dropout_rate=cfg.get("resid_pdrop", 0.1),
                attention_dropout=cfg.get("attn_pdrop", 0.0))


def get_config(arg: str | None = None):
    opts = parse_options(arg, folder="", data="", seq_len=128, steps=500)
    if not opts.folder:
        raise ConfigError("configs/gpt2_imported.py needs folder=<Hugging Face GPT-2 folder> "
                          "(config.json, model.safetensors, tokenizer.json)")
    folder = os.path.expanduser(opts.folder)
    c = base_config()
    c.task = dict(name="causal_lm")
    c.model = gpt2_model(folder)
    c.init_from = f"hf:{folder}"  # the weights ...
    c.dataset.name = "text"
    c.dataset.tokenizer = c.init_from  # ... and the tokenizer of the same folder
    c.dataset.path = os.path.expanduser(opts.data)  # '' = the standard library's .py files
    c.dataset.split_by = "auto"
    c.dataset.eval_fraction = 0.05
    c.dataset.max_bytes = 5_000_000  # bytes read per split before tokenising
    c.dataset.seq_len = min(opts.seq_len, c.model.max_len)
    c.evaluators = ("text_samples",)  # samples.txt at the end, through the tokenizer
    prompt = min(32, c.dataset.seq_len)  # tokens of the first eval window continued
    c.text_samples = dict(prompt_length=prompt, length=min(100, c.model.max_len - prompt),
                          temperature=0.8, top_k=0, top_p=0.95, seed=0)
    c.batch_size = 8
    c.num_train_steps = opts.steps
    c.eval_max_batches = 20
    c.log_every_steps = 50
    c.eval_every_steps = max(opts.steps // 2, 1)
    c.checkpoint_every_steps = max(opts.steps // 2, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 5e-5
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = min(50, opts.steps // 10)
    c.optimizer.clip_norm = 1.0
    c.sample = dict(prompt="", length=min(100, c.model.max_len - 1), temperature=0.8, top_k=0,
                    top_p=0.95, num_samples=1, seed=0)
    if opts.smoke:
        c.dataset.seq_len = min(32, c.model.max_len - 1)
        c.dataset.max_bytes = 100_000
        c.sample.length = min(16, c.model.max_len - 2)
        c.text_samples.prompt_length = min(8, c.dataset.seq_len)
        c.text_samples.length = min(8, c.model.max_len - c.text_samples.prompt_length)
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
    return c
