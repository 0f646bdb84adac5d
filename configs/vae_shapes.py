"""Convolutional VAE on grayscale single-shape `shapes` images (offline).

    python launch.py --config=configs/vae_shapes.py --workdir=runs/vae_shapes
    python launch.py --config=configs/vae_shapes.py:latent_dim=2 --workdir=runs/vae_shapes_2d
    python launch.py --config=configs/vae_shapes.py:smoke --workdir=/tmp/vae_shapes_smoke
    python launch.py --config=configs/vae_shapes.py --workdir=runs/vae_shapes --sample

The prior is a learned mixture of 64 Gaussians; `configs/vae_shapes.py:prior=0` gives the classic
N(0, I) prior and its closed-form KL.
Reports the ELBO, its reconstruction and KL terms, PSNR; pictures of reconstructions,
prior samples, latent interpolations and (latent_dim=2) the latent scatter by class;
at the end the Fréchet distance of prior samples in the features of a shapes classifier.
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.tasks.frechet import frechet_config


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="conv_vae", latent_dim=16, beta=1.0, image_size=32,
                         num_classes=4, prior=64, steps=8000)
    c = base_config()
    c.task = dict(
        name="autoencoding",
        # -log N(x; decoder(z), 0.2^2) summed over pixels: grey levels are not Bernoulli, and
        # this weighs reconstruction enough for sharp shapes (bce: blurry, stars lose points)
        reconstruction_loss="gaussian",  # gaussian | bce | mse
        decoder_std=0.2,  # pixel std of the decoder: 0.1 sharper (25.2 dB), worse samples
        corruption="none",  # none | gaussian | masking | salt_pepper
        noise_level=0.0,
        beta=opts.beta,  # KL weight: 1 = the ELBO, > 1 = beta-VAE
        num_report_images=16,  # test images shown in the reconstruction grid
        interpolation_steps=10,  # images per latent interpolation strip
        scatter_examples=1000,  # eval images in the 2-D latent scatter (latent_dim=2)
        sample_seed=1234,  # fixed prior noise for the sample grid, comparable across steps
    )
    c.model = dict(
        name=opts.model,  # conv_vae | dense_vae
        image_shape=(opts.image_size, opts.image_size, 1),  # (H, W, C) of the data
        latent_dim=opts.latent_dim,  # dimensions of the Gaussian latent
        features=(32, 64, 128),  # conv: channels of the stride-2 encoder convolutions
        hidden_sizes=(512, 256),  # dense: encoder widths (the decoder mirrors them)
        norm="group",  # conv: none | group (GroupNorm after each hidden convolution)
        blocks_per_stage=0,  # conv: residual 3x3 blocks per resolution (encoder and decoder)
        # 0: N(0, I) prior with the closed-form KL; K: a learned mixture of K Gaussians (KL
        # estimated at the drawn z). The codes cluster by shape and N(0, I) samples land between
        # the clusters (blends, Fréchet 75.0); with 64 components: Fréchet 64.4, clean shapes
        prior_components=opts.prior,
        activation="relu",
    )
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size
    c.dataset.channels = 1  # grayscale
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.num_objects = 1  # one shape per image
    c.dataset.noise = 0.0
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 512
    c.frechet = frechet_config(num_classes=opts.num_classes, smoke=opts.smoke)
    c.frechet.enabled = opts.num_classes >= 2  # the feature classifier needs classes
    c.sample = dict(num_samples=64, seed=0, output="vae_shapes_samples.png")  # --sample
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    if opts.smoke:
        shrink_for_smoke(c)
    return c
