"""The quick tour: one small model of each family, each trained offline until its result shows.

What `python launch.py` with no flags runs, into `runs/quick_tour` (a second start reuses the
finished runs). Each family gets one short run chosen to convince in its share of about three
minutes on a 2-core CPU; the table printed at the end gives each headline figure with what it
means (chance, baseline or floor, and which way is better), and the last line is the path of
the report page with every family's picture.

    python launch.py
    python launch.py --experiment=experiments/quick_tour.py --workdir=runs/tour --parallel=1
    python launch.py --experiment=experiments/quick_tour.py:smoke --workdir=/tmp/tour

Not in the tour, as no run of theirs convinces within its share of three minutes on two
cores: semantic segmentation (`python launch.py --config=configs/unet_shapes.py`, U-Net mean
IoU 0.92 after 1,000 steps, about 12 minutes; 0.22 after 400 steps on 32x32 scenes) and the
Vision Transformer (`configs/vit_shapes.py`: 0.47 on 4 kinds after 300 steps, where LeNet-5
has 0.95).

Default size: one seed, 8 runs of 80 to 2,000 steps, two at a time (`default_parallel`, up
to the core count); 2 min 43 s on an idle 2-core CPU with an empty compilation cache, 2 s
for a second start that reuses the runs (docs/results/quick_tour/tuning.md).
Options: smoke, seeds (count), steps (multiplies every family's step count).
"""

import os

import ml_collections

from configs.base import parse_options
from dl_arch.config.files import split_spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "experiments", "quick_tour_text.txt")  # the GPT learns it by heart
SHAPES4 = ("circle", "square", "triangle", "star")


def family(order, name, trial, config, steps, headline, label, goal, means, pictures,
           run, more, overrides=None):
    """One row of the tour: its run (config file, steps, overrides) and how the page shows it."""
    return dict(order=order, family=name, trial=trial, config=config, steps=steps,
                overrides=overrides or {},
                params=dict(headline=headline, label=label, goal=goal, means=means,
                            pictures=pictures, run=run, more=more))


# Longest first: with --parallel the runs end about together.
FAMILIES = [
    family(
        6, "GAN", "dcgan-shapes",
        "configs/dcgan_shapes.py:image_size=16,num_classes=2,features=32", 1600,
        "eval/frechet_distance", "Fréchet distance", "min",
        "of 500 samples to real shapes, in a shapes classifier's features; real-vs-real "
        "floor {eval/frechet_real_floor:.2f}, lower is better",
        [("samples.png", "samples of a fixed noise batch: circles and squares")],
        "DCGAN on 16x16 circles and squares",
        "`python launch.py --config=configs/dcgan_shapes.py` (32x32, 4 kinds, 16,000 steps, "
        "about 20 min: Fréchet 8.9 against a floor of 6.6)",
        {"model.num_stages": 2, "ema_decay": 0.99, "batch_size": 32,
         "phase_optimizers.discriminator.learning_rate": 1e-3,
         "phase_optimizers.generator.learning_rate": 1e-3,
         "frechet.num_samples": 500, "frechet.classifier_steps": 60,
         "frechet.classifier_batch_size": 64}),
    family(
        7, "detection", "ssd-shapes", "configs/detector_shapes.py", 250,
        "eval/mAP50", "mAP@0.5", "max",
        "boxes of 3 shapes per image, 4 kinds; 1 = every object found and named, a "
        "detector that guesses scores about 0, higher is better",
        [("detections.png", "predicted boxes (solid, with scores) and the true ones (dashed)")],
        "SSD (ResNet + FPN) on 64x64 scenes",
        "`python launch.py --config=configs/detector_shapes.py` (1,500 steps: mAP@0.5 0.995)",
        {"batch_size": 16, "eval_max_batches": 4, "evaluators": ("detections",)}),
    family(
        4, "Transformer", "gpt-text",
        f"configs/gpt_text.py:model=gpt_nano,seq_len=128,path={CORPUS}", 220,
        "train_bits_per_char", "bits/char", "min",
        "on the 830 bytes it trained on (memorised: held-out tail {eval/bits_per_char:.1f}); "
        "byte frequencies alone {tour/unigram_bits:.2f}, uniform 8, lower is better",
        [("samples.txt", "what it writes after the prompt \"A \" (a page it learnt by heart)")],
        "GPT (3 layers) learning one short page",
        "`python launch.py --config=configs/gpt_text.py` (a 4-layer GPT on the standard "
        "library's Python code, 3,000 steps)",
        {"batch_size": 8, "model.dropout_rate": 0.0, "optimizer.learning_rate": 3e-3,
         "optimizer.warmup_steps": 30, "optimizer.weight_decay": 0.0,
         "dataset.eval_fraction": 0.15, "text_samples.prompt": "A ",
         "text_samples.length": 126}),
    family(
        5, "autoencoder", "ae-shapes",
        "configs/ae_shapes.py:channels=1,model=dense_ae,latent_dim=64", 2000,
        "eval/psnr", "PSNR (dB)", "max",
        "of held-out reconstructions through a 64-number code; the mean image scores "
        "{tour/mean_image_psnr:.1f}, higher is better",
        [("reconstruction.png", "rows alternate: held-out input, its reconstruction")],
        "dense autoencoder on 32x32 shapes",
        "`python launch.py --config=configs/vae_shapes.py` (a VAE with samples and latent "
        "interpolations, 8,000 steps)",
        {"model.hidden_sizes": (512,), "batch_size": 32, "optimizer.learning_rate": 5e-3,
         "evaluators": ("reconstructions",)}),
    family(
        8, "speech", "kws-4-words", "configs/keyword_spotting.py:batch=16", 80,
        "eval/accuracy", "accuracy", "max",
        "on 200 clips of yes/no/up/down in voices never heard in training; chance 0.25, "
        "higher is better",
        [("confusion_matrix.png", "confusion matrix of the held-out clips")],
        "keyword-spotting CNN on 4 synthesised words",
        "`python launch.py --config=configs/keyword_spotting.py` (20 words, 1,000 steps: 99.3%)",
        {"dataset.words": ("yes", "no", "up", "down"),
         "dataset.class_names": ("yes", "no", "up", "down"), "model.num_classes": 4,
         "dataset.num_eval_examples": 200}),
    family(
        2, "CNN", "lenet5-shapes", "configs/lenet5_shapes.py:num_classes=4", 250,
        "eval/accuracy", "accuracy", "max",
        "on 512 held-out images of 4 kinds; chance 0.25, higher is better",
        [("feature_maps/stage1.png", "first-layer feature maps of four test images", 480),
         ("confusion_matrix.png", "confusion matrix of the held-out images")],
        "LeNet-5 on 32x32 shapes",
        "`python launch.py --config=configs/lenet5_shapes.py` (6 kinds, 600 steps: 98.4%)",
        {"dataset.class_names": SHAPES4}),
    family(
        3, "RNN", "lstm-adding", "configs/lstm_adding.py:T=20,hidden=64,lr=5e-3", 600,
        "eval/solved", "solved", "max",
        "share of held-out sums within ±0.04; the best constant solves "
        "{tour/constant_solved:.2f}, higher is better",
        [("predictions.png", "predicted against true sums of held-out sequences")],
        "LSTM on the adding problem, T=20",
        "`python launch.py --config=configs/lstm_adding.py:T=200` (and "
        "`experiments/sequence_length.py`: the simple RNN fails from T=30 on)",
        {"evaluators": ()}),
    family(
        1, "perceptron/MLP", "mlp-spirals", "configs/mlp_xor.py:dataset=spirals,width=64", 400,
        "eval/accuracy", "accuracy", "max",
        "on 2,000 held-out points; chance 0.5, higher is better",
        [("decision_boundary.png", "the learnt boundary between the two spirals")],
        "MLP (2 hidden layers of 64) on two spirals",
        "`experiments/perceptron_vs_mlp.py`: a perceptron cannot, one hidden layer can",
        {}),
]


def get_experiment(arg: str | None = None) -> ml_collections.ConfigDict:
    """One trial per family."""
    opts = parse_options(arg, seeds=1, steps=1.0)
    trials = []
    for f in FAMILIES:
        path, options = split_spec(f["config"])
        options = ",".join(filter(None, [options, "smoke" if opts.smoke else ""]))
        overrides = dict(f["overrides"])
        if opts.smoke:  # the config's smoke size, with the tour's data and pictures
            overrides = {k: v for k, v in overrides.items()
                         if k.startswith(("dataset.", "evaluators", "text_samples.prompt"))
                         or k in ("model.num_classes", "model.num_stages")}
        else:
            n = max(10, int(f["steps"] * opts.steps))
            overrides.update({"num_train_steps": n, "eval_every_steps": n,
                              "checkpoint_every_steps": n, "log_every_steps": max(1, n // 20)})
        trials.append({"name": f["trial"], "config": f"{path}:{options}" if options else path,
                       "overrides": overrides,
                       "params": {"order": f["order"], "family": f["family"], **f["params"]}})
    e = ml_collections.ConfigDict()
    e.title = "Quick tour: one small model per family"
    e.trials = trials
    e.seeds = list(range(opts.seeds))
    e.trainer = "dl_arch.experiments.tour_page:train_run"
    e.page = "dl_arch.experiments.tour_page:write_page"
    e.default_parallel = max(1, min(2, os.cpu_count() or 1))
    e.derived = [{"name": "train_bits_per_char", "kind": "last", "metric": "train/bits_per_char"}]
    return e
