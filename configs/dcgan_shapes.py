"""DCGAN on grayscale single-shape `shapes` images, 32x32 (offline): light shapes on black.

    python launch.py --config=configs/dcgan_shapes.py --workdir=runs/dcgan_shapes
    python launch.py --config=configs/dcgan_shapes.py:smoke --workdir=/tmp/dcgan_shapes_smoke
    python launch.py --config=configs/dcgan_shapes.py --workdir=runs/dcgan_shapes --sample
    python launch.py --config=configs/dcgan_shapes.py:data=/data/my_images --workdir=runs/dcgan_mine

One jitted step updates the discriminator, then the generator, each with its own Adam.
Reports both losses and D's accuracy on real and fake; pictures of a fixed noise batch and
latent interpolations; at the end the Fréchet distance in a shapes classifier's features.

`data=PATH`: your images instead of `shapes`: a folder (flat, or one sub-folder per class),
an .npz of `image` (and `label`) arrays or hf:<dataset>, fitted to image_size, greyscale;
with 2 or more classes D gets its class head and the Fréchet distance a classifier.
"""

from configs.base import base_config, own_images, parse_options, shrink_for_smoke
from dl_arch.data.image_files import data_classes
from dl_arch.evaluators.frechet import frechet_section


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=32, num_classes=4, features=32, latent_dim=64,
                         steps=16000, data="")
    classes = data_classes(opts.data)
    # a user's data is labelled when it says so (class folders, a label array)
    num_classes = len(classes or ()) if opts.data else opts.num_classes
    labelled = num_classes >= 2  # D's class head and the Fréchet classifier need classes
    c = base_config()
    c.task = dict(
        name="gan",
        real_label=0.9,  # D's target for real images: one-sided label smoothing (1 = off)
        standing_stats_batches=16,  # noise batches for BatchNorm statistics of G's average (0: live G's)
        discriminator_steps=1,  # D updates per G update (1 = the paper; WGAN and SN-GAN also use more)
        r1_gamma=0.0,  # weight of D's gradient penalty on real images (0 = off)
        # D also classifies the real shapes and G is pushed to samples that D's class head
        # finds confidently one kind, all kinds over the batch (CatGAN's G term; 0 = off, the
        # paper); the weights compared are in docs/results/tuning_notes.md
        class_weight=0.3 if labelled else 0.0,
    )
    c.ema_decay = 0.999  # decay of the weight average that evaluation draws with (0 = off)
    # pictures at every evaluation; the Fréchet distance at the end
    c.evaluators = ("gan_samples", "frechet") if labelled else ("gan_samples",)
    c.model = dict(
        name="dcgan",
        image_shape=(opts.image_size, opts.image_size, 1),  # (H, W, C) of the data
        latent_dim=opts.latent_dim,  # width of the generator's noise input
        generator_features=opts.features,  # G's last hidden width (x2 per earlier stage)
        discriminator_features=opts.features,  # D's first width (x2 per later stage)
        num_stages=3,  # stride-2 (de)convolutions: 4x4 -> 32x32
        kernel_size=4,
        # batch (the paper) | spectral | none. With spectral, D's eval-mode accuracy means
        # something (no running statistics of mixed batches)
        discriminator_norm="spectral",
        num_classes=num_classes if labelled else 0,  # D's class head (0 = none)
    )
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size
    c.dataset.channels = 1  # grayscale
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.num_objects = 1  # one shape per image
    c.dataset.noise = 0.0
    # light_on_dark: each shape a grey in [0.5, 1] on black. random: both greys random, at
    # least 0.45 apart, so dark on light and light on dark (the two compared:
    # docs/results/tuning_notes.md)
    c.dataset.palette = "light_on_dark"
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 512
    if labelled:
        c.frechet = frechet_section(num_classes=num_classes, smoke=opts.smoke)
    c.sample = dict(num_samples=64, seed=0, output="dcgan_shapes_samples.png")  # --sample
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    # Radford et al.: Adam, learning rate 2e-4, beta1 = 0.5 (the rates tried:
    # docs/results/tuning_notes.md)
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    c.phase_optimizers = dict(  # per-network overrides of config.optimizer
        discriminator=dict(learning_rate=2e-4),  # discriminator_norm="batch": see the notes
        generator=dict(learning_rate=2e-4),
    )
    if opts.smoke:
        shrink_for_smoke(c)
    if opts.data:
        own_images(c, opts.data, classes, opts.image_size, 1, labelled=False)
    return c
