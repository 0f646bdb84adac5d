"""The fine-tuning baseline: the same BERT and small labelled set, from random weights.

    python launch.py --config=configs/bert_scratch_offline.py --workdir=runs/bert_scratch

Identical to `bert_finetune_offline.py` without `init_from`, so the accuracy gap between the
two runs is what masked-LM pretraining bought.
"""

from configs.base import parse_options
from configs.bert_finetune_offline import get_config as finetune_config


def get_config(arg: str | None = None):
    opts = parse_options(arg, labelled=32, steps=400)
    arg_text = f"labelled={opts.labelled},steps={opts.steps}" + (",smoke" if opts.smoke else "")
    c = finetune_config(arg_text)
    c.init_from = ""  # random initialisation
    return c
