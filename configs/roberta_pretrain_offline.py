"""RoBERTa-style masked-LM pretraining of the BERT encoder (offline, procedural language).

    python launch.py --config=configs/roberta_pretrain_offline.py --workdir=runs/roberta_pretrain
    python launch.py --config=configs/bert_finetune_offline.py:init_from=runs/roberta_pretrain \
        --config.model.max_len=128 --workdir=runs/roberta_finetune
    python launch.py --config=configs/roberta_pretrain_offline.py:smoke --workdir=/tmp/roberta

The model, language and 15% (80/10/10) masking of `bert_pretrain_offline.py`, with RoBERTa's
changes (Liu et al., 2019):
- dynamic masking: `masked_lm` draws a fresh masking for every batch inside the jitted step,
  from the step's rng, so an example seen in two epochs is masked differently, and the same
  seed gives the same masks (the BERT configs here mask dynamically too; the original BERT
  masked once, in preprocessing);
- no next-sentence objective: none exists here (the BERT heads are mlm, classify, none);
- longer sequences of full sentences: `seq_len` tokens (128; BERT's config 24) filled with
  consecutive sentences of one topic, each ended by [SEP] (`dataset.pack_sentences`);
- Adam's beta2 = 0.98, as RoBERTa uses for large-batch stability.
The fine-tuning command gives the classifier the same position table (`model.max_len`), so
every encoder tensor loads.
"""

from configs.base import parse_options
from configs.bert_pretrain_offline import get_config as bert_pretrain


def get_config(arg: str | None = None):
    opts = parse_options(arg, seq_len=128, steps=2000)
    c = bert_pretrain(f"steps={opts.steps}" + (",smoke" if opts.smoke else ""))
    c.dataset.max_len = opts.seq_len
    c.dataset.pack_sentences = True
    c.model.max_len = opts.seq_len
    c.optimizer.b2 = 0.98
    return c
