"""Character CTC transcription of TFDS LibriSpeech (train_clean100, evaluated on dev_clean).

The offline counterpart is `speech_digits.py`. 80 log-mel bins, SpecAugment's LibriSpeech
policy (two frequency masks up to 27 bins, two time masks up to 40 frames), DeepSpeech2
(bidirectional LSTM or GRU) or the Transformer CTC encoder at their declared (GPU) sizes.
Prepare the dataset once (`pip install 'dl_arch[tfds]'`; TensorFlow downloads and builds it),
then:

    python launch.py --config=configs/speech_librispeech.py --workdir=runs/librispeech_ds2
    python launch.py --config=configs/speech_librispeech.py:model=transformer_ctc --workdir=runs/ls_tf
    python launch.py --config=configs/speech_librispeech.py:smoke --workdir=/tmp/ls_smoke
    python launch.py --config=configs/speech_librispeech.py --workdir=runs/librispeech_ds2 \
        --sample --config.sample.audio='my_clips/*.flac'
"""

from __future__ import annotations

import ml_collections

from configs.base import base_config, parse_options, shrink_for_smoke
from configs.speech_digits import ctc_model


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="deepspeech2", cell="lstm", size="base", steps=100000,
                         lr=5e-4, batch=32)
    c = base_config()
    c.task.name = "speech_recognition"
    c.task.n_mels = 80
    c.task.freq_width = 27
    c.task.time_width = 40
    c.model = ctc_model(opts)
    c.dataset.name = "librispeech"
    c.dataset.num_workers = 4  # decoding FLAC in worker processes
    c.eval_max_batches = 50  # 1,600 of dev_clean's 2,703 utterances at each evaluation
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = max(opts.steps // 20, 1)
    c.checkpoint_every_steps = max(opts.steps // 20, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 50, 1)
    c.optimizer.clip_norm = 1.0
    if opts.smoke:
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
        c.eval_batch_size = 4
        c.eval_max_batches = 1
        c.dataset.num_workers = 0
        c.dataset.max_seconds = 4.0
        c.dataset.max_label_len = 80
        c.transcripts = ml_collections.ConfigDict({"num_examples": 4, "beam": 2})
    return c
