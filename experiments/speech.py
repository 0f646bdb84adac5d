"""Study: CNN vs GRU vs bidirectional LSTM vs Transformer transcribing spoken digits with CTC.

Claims tested: recurrent encoders (Deep Speech 2) transcribe speech well from little data;
a convolution-only model, which sees a fixed window, is cheaper per step but needs depth to
see a whole word; a Transformer encoder sees the whole utterance in parallel but needs more
data or steps to learn alignment; the recurrent models' step time grows linearly with the
utterance length (sequential), attention's quadratically (in parallel).
Accuracy trials: every model of configs/speech_digits.py (`conv_ctc`, `deepspeech2` with GRU
and with LSTM, `transformer_ctc`) at two sizes (`small`, `medium`), `steps` steps of 32
utterances of 3-7 digits, CER and WER of greedy decoding (and beam search, `transcripts`) on
512 utterances of voices training never hears. Cost trials: 20 steps at longer utterances
(`cost_seconds`, default 2.5/5/10/20 s with 1-3 / 3-7 / 6-14 / 12-28 digits) for step time
and XLA's FLOPs and memory (`step_cost` probe).
Report: CER, WER, parameters, FLOPs, steps/s; step time and memory vs utterance length.

    python launch.py --experiment=experiments/speech.py --workdir=runs/speech --parallel=2
    python launch.py --experiment=experiments/speech.py:smoke --workdir=/tmp/speech_study

Default size: 8 accuracy runs of 300 steps and 16 cost runs of 20 steps: 1 h 43 min with
--parallel=2 on the 2-core CPU (report: docs/results/speech/report.md).
Options: smoke, seeds (count), steps, sizes ('small/medium'), cost_seconds ('2.5/5/10/20').
"""

import ml_collections

from configs.base import parse_options
from dl_arch.experiments.study import as_list

# trial label -> options of configs/speech_digits.py
MODELS = {
    "cnn": "model=conv_ctc",
    "gru": "model=deepspeech2,cell=gru",
    "bilstm": "model=deepspeech2,cell=lstm",
    "transformer": "model=transformer_ctc",
}
SECONDS_PER_DIGIT = 0.7  # the slowest voices' pace, pauses included


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """The grid: (model, size) for accuracy, then (model, utterance length) for cost."""
    opts = parse_options(arg, seeds=1, steps=300, sizes="small/medium", cost_seconds="2.5/5/10/20")
    sizes, seconds = as_list(opts.sizes, str), as_list(opts.cost_seconds, float)
    seeds, steps = list(range(opts.seeds)), opts.steps
    smoke = ",smoke" if opts.smoke else ""
    if opts.smoke:
        sizes, seconds, steps = ["small"], [2.5], 4
    trials = []
    for label, options in MODELS.items():
        for size in sizes:
            trials.append({"name": f"{label}-{size}",
                           "config": f"configs/speech_digits.py:{options},size={size},steps={steps}{smoke}",
                           "params": {"model": label, "size": size, "seconds": 4.5,
                                      "purpose": "accuracy"}})
        for s in seconds:
            most = max(1, int(s / SECONDS_PER_DIGIT))
            trials.append({
                "name": f"{label}-cost-{s:g}s",
                "config": f"configs/speech_digits.py:{options},size={sizes[0]},steps=20{smoke}",
                "overrides": {"dataset.max_seconds": s, "dataset.min_words": max(1, most // 2),
                              "dataset.max_words": most, "dataset.max_label_len": 8 * most,
                              "dataset.num_eval_examples": 8, "eval_every_steps": 20,
                              "evaluators": ()},
                "params": {"model": label, "size": sizes[0], "seconds": s, "purpose": "cost"}})
    e = ml_collections.ConfigDict()
    e.title = "Speech: CNN vs GRU vs bidirectional LSTM vs Transformer (CTC, spoken digits)"
    e.trials = trials
    e.seeds = seeds
    e.probes = ["step_cost"]
    e.derived = [{"name": "step_time_ms", "kind": "scale", "metric": "steps_per_sec", "power": -1,
                  "factor": 1000.0}]
    e.metrics = ["eval/cer:min", "eval/wer:min", "eval/cer_beam:min", "eval/wer_beam:min",
                 "num_params:min", "flops_per_step:min", "steps_per_sec:max", "step_time_ms:min",
                 "step_memory_bytes:min", "wall_time_s:min"]
    e.plots = [
        {"name": "cer", "kind": "bar", "y": "eval/cer", "where": {"purpose": "accuracy"},
         "title": "Eval CER, unseen voices (lower is better)"},
        {"name": "cer_vs_params", "kind": "metric", "x": "num_params", "y": "eval/cer",
         "group": "model", "logx": True, "where": {"purpose": "accuracy"},
         "title": "CER vs parameters"},
        {"name": "learning_curves", "kind": "curves", "y": "eval/cer",
         "where": {"purpose": "accuracy"}, "title": "Eval CER during training"},
        {"name": "step_time_vs_length", "kind": "metric", "x": "seconds", "y": "step_time_ms",
         "group": "model", "logx": True, "logy": True, "where": {"purpose": "cost"},
         "ref_slopes": [1, 2], "title": "Time per training step (ms) vs utterance length (s)"},
        {"name": "memory_vs_length", "kind": "metric", "x": "seconds", "y": "step_memory_bytes",
         "group": "model", "logx": True, "logy": True, "where": {"purpose": "cost"},
         "ref_slopes": [1, 2], "title": "XLA-planned memory of one train step vs length"},
    ]
    return e
