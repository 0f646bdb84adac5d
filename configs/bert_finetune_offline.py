"""Fine-tunes the offline-pretrained BERT on a small labelled set (topic classification).

    python launch.py --config=configs/bert_pretrain_offline.py --workdir=runs/bert_pretrain
    python launch.py --config=configs/bert_finetune_offline.py:init_from=runs/bert_pretrain \
        --workdir=runs/bert_finetune

The encoder comes from the pretraining run through `config.init_from` (parameters matching
by path and shape; the MLM head is left out, the classifier and pooler are new);
`freeze_encoder=True` trains only the pooler and classifier. Compare with
`bert_scratch_offline.py`, the same model and data from random initialisation.

    python launch.py --config=configs/bert_finetune_offline.py:data=mine.jsonl,classes=3 \
        --workdir=runs/bert_mine

`data=` fine-tunes on your CSV / TSV / JSONL of (text, label) (the `text_table` source; 10%
held out for eval). Your words are not in the procedural vocabulary, so texts become
[CLS] bytes [SEP] (`special_bytes`: the special ids of the pretraining, bytes from id 4)
cut to `max_len`; `init_from` then loads what matches by path and shape, and helps when the
encoder was pretrained on bytes.
"""

from configs.base import base_config, own_data, parse_options, shrink_for_smoke
from configs.bert_pretrain_offline import LANGUAGE, bert_model

TABLES = {"csv": "text_table", "tsv": "text_table", "jsonl": "text_table"}


def get_config(arg: str | None = None):
    opts = parse_options(arg, init_from="", labelled=32, steps=400, freeze_encoder=False,
                         data="", classes=LANGUAGE["num_topics"], max_len=128)
    c = base_config()
    c.task = dict(name="classification", input_key="inputs", label_smoothing=0.0, top_k=2)
    c.model = bert_model("classify", opts.smoke)
    c.dataset.update(LANGUAGE)
    c.dataset.num_train_examples = opts.labelled  # the small labelled set
    c.dataset.num_eval_examples = 2048
    c.init_from = opts.init_from  # workdir of bert_pretrain_offline ('' = from scratch)
    c.freeze = ("^token_embed", "^position_embed", "^type_embed", "^embed_norm",
                "^encoder") if opts.freeze_encoder else ()
    c.batch_size = 32
    c.num_train_steps = opts.steps
    c.log_every_steps = 50
    c.eval_every_steps = 200
    c.checkpoint_every_steps = 400
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 3e-4
    c.optimizer.weight_decay = 0.01
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 50
    if opts.data:
        c.model.update(num_classes=opts.classes, max_len=opts.max_len)  # vocab_size covers 260
        own_data(c, opts.data, TABLES, tokenizer="special_bytes", max_len=opts.max_len,
                 num_classes=opts.classes)
    if opts.smoke:
        shrink_for_smoke(c)
        c.batch_size = 16
        if not opts.data:
            c.dataset.num_eval_examples = 64
    return c
