"""CTC transcription of spoken digit strings synthesised offline by eSpeak NG (`spoken_digits`).

Three to seven digits spoken as words by English eSpeak NG voices, with speaking rate, pitch,
gain and noise drawn per utterance; the eval split speaks with voices training never hears.
Log-mel features (40 bins, 10 ms frames) with SpecAugment, a DeepSpeech2-style model (strided
convs, bidirectional LSTM or GRU), a Transformer CTC encoder or a convolution-only model
(`conv_ctc`), CTC loss; eval CER / WER of
greedy decoding and, in the `transcripts` evaluator, of prefix beam search.

    python launch.py --config=configs/speech_digits.py --workdir=runs/speech_digits
    python launch.py --config=configs/speech_digits.py:cell=lstm --workdir=runs/digits_lstm
    python launch.py --config=configs/speech_digits.py:model=transformer_ctc --workdir=runs/digits_tf
    python launch.py --config=configs/speech_digits.py:model=conv_ctc --workdir=runs/digits_cnn
    python launch.py --config=configs/speech_digits.py:smoke --workdir=/tmp/digits_smoke
    python launch.py --config=configs/speech_digits.py --workdir=runs/speech_digits --sample \
        --config.sample.audio='my_clips/*.wav'
    python launch.py --config=configs/speech_digits.py:data=/data/my_speech --workdir=runs/mine

`size=small` (default, CPU), `medium`, or `base` (the model's declared size: DeepSpeech2's
3 x 512 units, a 12-layer Transformer). `data=FOLDER`: your audio files and a `metadata.csv` with columns
file,text (see dl_arch/data/sources/audio_folder.py); 10% is held out for eval.
eSpeak NG is GPL-licensed and optional: pip install 'dl_arch[speech]'.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from configs.base import base_config, own_data, parse_options, shrink_for_smoke
from dl_arch.config.errors import ConfigError

# model option -> size option -> model fields (a size not listed: the model's declared one)
_FRONT_SMALL = dict(conv_channels=(16, 16), time_kernels=(7, 7), mel_kernels=(11, 7))
_FRONT_MEDIUM = dict(conv_channels=(32, 32), time_kernels=(11, 11), mel_kernels=(21, 11))
CTC_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "deepspeech2": {"small": dict(**_FRONT_SMALL, hidden_size=128, num_layers=2),
                    "medium": dict(**_FRONT_MEDIUM, hidden_size=256, num_layers=3),
                    "base": {}},
    "transformer_ctc": {"small": dict(emb_dim=64, num_heads=4, num_layers=4, mlp_dim=256),
                        "medium": dict(emb_dim=128, num_heads=4, num_layers=6, mlp_dim=512),
                        "base": {}},
    "conv_ctc": {"small": dict(**_FRONT_SMALL, channels=128, kernel=11, num_layers=4),
                 "medium": dict(**_FRONT_MEDIUM, channels=256, kernel=11, num_layers=6),
                 "base": {}},
}
SIZES = ("small", "medium", "base")


def ctc_model(opts: ml_collections.ConfigDict) -> dict[str, Any]:
    """The `config.model` section of the `model`, `size` and `cell` options (tiny with smoke)."""
    if opts.size not in SIZES:
        raise ConfigError(f"config option size='{opts.size}'; use one of {', '.join(SIZES)}")
    if opts.smoke:
        model: dict[str, Any] = {"name": f"{opts.model}_tiny"}
    else:
        model = {"name": opts.model, **CTC_SIZES.get(opts.model, {}).get(opts.size, {})}
    if opts.model == "deepspeech2":
        model["cell"] = opts.cell  # lstm | gru
    return model


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    opts = parse_options(arg, model="deepspeech2", cell="gru", size="small", steps=1000,
                         lr=2e-3, batch=32, data="")
    c = base_config()
    c.task.name = "speech_recognition"
    c.model = ctc_model(opts)
    if opts.model == "transformer_ctc":  # at 4, the fastest utterances leave ~1 frame per character
        c.model.subsampling = 2
    c.dataset.name = "spoken_digits"
    c.dataset.num_train_examples = None  # endless: every utterance is synthesised fresh
    c.dataset.num_eval_examples = 512
    c.batch_size = opts.batch
    c.num_train_steps = opts.steps
    c.log_every_steps = 50
    c.eval_every_steps = max(opts.steps // 6, 1)
    c.checkpoint_every_steps = max(opts.steps // 6, 1)
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = opts.lr
    c.optimizer.weight_decay = 1e-4
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = max(opts.steps // 20, 1)
    c.optimizer.clip_norm = 1.0  # CTC's early gradients are large
    if opts.data:
        own_data(c, opts.data, {"folder": "audio_folder"})
    if opts.smoke:
        shrink_for_smoke(c, steps=4)
        c.batch_size = 4
        c.eval_batch_size = 4
        c.eval_max_batches = 1
        if not opts.data:
            c.dataset.max_words = 3
            c.dataset.max_seconds = 2.5
            c.dataset.num_eval_examples = 4
        c.transcripts = ml_collections.ConfigDict({"num_examples": 4, "beam": 2})
    return c
