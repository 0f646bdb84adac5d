"""DCGAN on TFDS MNIST, 28x28 (needs the dataset prepared once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/dcgan_mnist.py --workdir=runs/dcgan_mnist
    python launch.py --config=configs/dcgan_mnist.py:smoke --workdir=/tmp/dcgan_mnist_smoke
    python launch.py --config=configs/dcgan_mnist.py --workdir=runs/dcgan_mnist --sample

Generator 100 -> 7x7x128 -> 14x14x64 -> 28x28x1; discriminator mirrors it. Adam(2e-4,
beta1=0.5) per network. Pictures of a fixed noise batch at every evaluation; at the end
the Fréchet distance in the features of an MNIST classifier trained on the fly.
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.evaluators.frechet import frechet_section


def get_config(arg: str | None = None):
    opts = parse_options(arg, features=64, latent_dim=100, steps=10000)
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
        name="dcgan_28",
        image_shape=(28, 28, 1),
        latent_dim=opts.latent_dim,  # width of the generator's noise input
        generator_features=opts.features,  # G's last hidden width (x2 per earlier stage)
        discriminator_features=opts.features,  # D's first width (x2 per later stage)
        num_stages=2,  # stride-2 (de)convolutions: 7x7 -> 28x28
        num_classes=0,  # > 0: a class head on D (for task.class_weight)
    )
    c.dataset.name = "tfds:mnist"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.frechet = frechet_section(num_classes=10, smoke=opts.smoke)
    c.sample = dict(num_samples=64, seed=0, output="dcgan_mnist_samples.png")  # --sample
    c.batch_size = 128
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
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
