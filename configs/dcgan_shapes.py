"""DCGAN on grayscale single-shape `shapes` images, 32x32 (offline): light shapes on black.

    python launch.py --config=configs/dcgan_shapes.py --workdir=runs/dcgan_shapes
    python launch.py --config=configs/dcgan_shapes.py:smoke --workdir=/tmp/dcgan_shapes_smoke
    python launch.py --config=configs/dcgan_shapes.py --workdir=runs/dcgan_shapes --sample

One jitted step updates the discriminator, then the generator, each with its own Adam.
Reports both losses and D's accuracy on real and fake; pictures of a fixed noise batch and
latent interpolations; at the end the Fréchet distance in a shapes classifier's features.
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.tasks.frechet import frechet_config


def get_config(arg: str | None = None):
    opts = parse_options(arg, image_size=32, num_classes=4, features=32, latent_dim=64,
                         steps=16000)
    labelled = opts.num_classes >= 2  # D's class head and the Fréchet classifier need classes
    c = base_config()
    c.task = dict(
        name="gan",
        num_report_images=64,  # generated images in the sample grid
        interpolation_steps=10,  # images per latent interpolation strip
        sample_seed=1234,  # the fixed noise batch: the grid is comparable across steps
        real_label=0.9,  # D's target for real images: one-sided label smoothing (1 = off)
        generator_ema=0.999,  # decay of the average of G's weights that draws pictures (0 = off)
        standing_stats_batches=16,  # noise batches for BatchNorm statistics of G's average (0: live G's)
        discriminator_steps=1,  # D updates per G update (1 = the paper; WGAN and SN-GAN also use more)
        r1_gamma=0.0,  # weight of D's gradient penalty on real images (0 = off)
        # D also classifies the real shapes and G is pushed to samples that D's class head
        # finds confidently one kind, all kinds over the batch (CatGAN's G term; 0 = off, the
        # paper). On palette "random", 8,000 steps, Fréchet: 0 -> 43.9, 0.15 -> 41.8,
        # 0.3 -> 33.4, 0.5 -> 35.7, 1.0 -> 45.9 (the clearest triangles and squares, but stars
        # turn to scribbles); seeds 1, 2 at 0.3: 38.4, 33.4. On the default palette, 8,000
        # steps: 0 -> 45.6 (irregular polygons, no stars), 0.3 -> 14.7
        class_weight=0.3 if labelled else 0.0,
    )
    c.model = dict(
        name="dcgan",
        image_shape=(opts.image_size, opts.image_size, 1),  # (H, W, C) of the data
        latent_dim=opts.latent_dim,  # width of the generator's noise input
        generator_features=opts.features,  # G's last hidden width (x2 per earlier stage)
        discriminator_features=opts.features,  # D's first width (x2 per later stage)
        num_stages=3,  # stride-2 (de)convolutions: 4x4 -> 32x32
        kernel_size=4,
        # batch (the paper) | spectral | none. Spectral: Fréchet 43.9 vs 48.3 with BatchNorm, and
        # D's eval-mode accuracy means something (no running statistics of mixed batches)
        discriminator_norm="spectral",
        num_classes=opts.num_classes if labelled else 0,  # D's class head (0 = none)
    )
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size
    c.dataset.channels = 1  # grayscale
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.num_objects = 1  # one shape per image
    c.dataset.noise = 0.0
    # light_on_dark: each shape a grey in [0.5, 1] on black, the single-shape variant that
    # learns quickly. Fréchet (floor 6.6) after 8,000 steps, seeds 0, 1, 2: 14.7, 21.7,
    # 15.8; after 16,000: 8.9, 20.1: clean stars, squares, triangles and circles, a
    # few fragments. random: both greys random, at least 0.45 apart, so dark on light and
    # light on dark (the earlier default; floor 10.4): 33.4 after 8,000 steps, 25.1 after
    # 16,000, a third to half of the shapes clean and no clean stars
    c.dataset.palette = "light_on_dark"
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 512
    c.frechet = frechet_config(num_classes=opts.num_classes, smoke=opts.smoke)
    c.frechet.enabled = labelled
    c.sample = dict(num_samples=64, seed=0, output="dcgan_shapes_samples.png")  # --sample
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    # Radford et al.: Adam, learning rate 2e-4, beta1 = 0.5. On palette "random": with the
    # paper's BatchNorm D, D wins quickly on these simple images and does better at half G's
    # rate: Fréchet 74.2 after 6,000 steps vs 110.5 after 3,000 at equal rates; with
    # real_label 0.9, 8,000 steps: 70.4; drawn by the 0.999 weight average of G: 57.8, with
    # its standing statistics: 48.3. The spectral-norm D takes the paper's rate: 43.9 (floor
    # 10.4); with class_weight 0.3: 33.4; D twice as wide (2.9x the FLOPs): 43.3.
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    c.phase_optimizers = dict(  # per-network overrides of config.optimizer
        discriminator=dict(learning_rate=2e-4),  # 1e-4 with discriminator_norm="batch"
        generator=dict(learning_rate=2e-4),
    )
    if opts.smoke:
        shrink_for_smoke(c)
    return c
