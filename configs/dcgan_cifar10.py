"""DCGAN on TFDS CIFAR-10, 32x32 RGB (needs the dataset prepared once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/dcgan_cifar10.py --workdir=runs/dcgan_cifar10
    python launch.py --config=configs/dcgan_cifar10.py:smoke --workdir=/tmp/dcgan_cifar10_smoke

Generator 100 -> 4x4x256 -> 8x8x128 -> 16x16x64 -> 32x32x3 (the 64x64 DCGAN with one
stage fewer); the discriminator mirrors it. Adam(2e-4, beta1=0.5) per network. At the end
the Fréchet distance in the features of a CIFAR-10 classifier trained on the fly (not
Inception features: compare numbers only within this codebase).
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.evaluators.frechet import frechet_section


def get_config(arg: str | None = None):
    opts = parse_options(arg, features=64, latent_dim=100, steps=30000)
    c = base_config()
    c.task = dict(
        name="gan",
        real_label=1.0,  # D's target for real images; 0.9 = one-sided label smoothing
        standing_stats_batches=16,  # noise batches for BatchNorm statistics of G's average (0: live G's)
        discriminator_steps=1,  # D updates per G update (1 = the paper; WGAN and SN-GAN also use more)
        r1_gamma=0.0,  # weight of D's gradient penalty on real images (0 = off)
        # D's class loss + G's class-confidence term (needs model.num_classes = 10); 0.3 is the
        # dcgan_shapes default (its figures: docs/results/tuning_notes.md), not yet measured
        # on this data
        class_weight=0.0,
    )
    c.ema_decay = 0.0  # decay of the weight average that evaluation draws with (0 = off)
    # pictures at every evaluation; the Fréchet distance at the end
    c.evaluators = ("gan_samples", "frechet")
    c.model = dict(
        name="dcgan_32",
        image_shape=(32, 32, 3),
        latent_dim=opts.latent_dim,  # width of the generator's noise input
        generator_features=opts.features,  # G's last hidden width (x2 per earlier stage)
        discriminator_features=opts.features,  # D's first width (x2 per later stage)
        num_stages=3,  # stride-2 (de)convolutions: 4x4 -> 32x32
        num_classes=0,  # > 0: a class head on D (for task.class_weight)
    )
    c.dataset.name = "tfds:cifar10"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.frechet = frechet_section(num_classes=10, smoke=opts.smoke)
    c.frechet.classifier_steps = 50 if opts.smoke else 3000  # CIFAR needs a longer fit
    c.sample = dict(num_samples=64, seed=0, output="dcgan_cifar10_samples.png")  # --sample
    c.batch_size = 128
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 5000
    c.optimizer.name = "adam"  # Radford et al.: Adam(2e-4, beta1 = 0.5)
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    c.phase_optimizers = dict(  # per-network overrides of config.optimizer
        discriminator=dict(learning_rate=2e-4),
        generator=dict(learning_rate=2e-4),
    )
    if opts.smoke:
        shrink_for_smoke(c)
    return c
