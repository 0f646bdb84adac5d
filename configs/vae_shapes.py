"""Convolutional VAE on grayscale single-shape `shapes` images (offline).

    python launch.py --config=configs/vae_shapes.py --workdir=runs/vae_shapes
    python launch.py --config=configs/vae_shapes.py:latent_dim=2 --workdir=runs/vae_shapes_2d
    python launch.py --config=configs/vae_shapes.py:smoke --workdir=/tmp/vae_shapes_smoke
    python launch.py --config=configs/vae_shapes.py --workdir=runs/vae_shapes --sample
    python launch.py --config=configs/vae_shapes.py:data=/data/my_images --workdir=runs/vae_mine

The prior is a learned mixture of 64 Gaussians; `configs/vae_shapes.py:prior=0` gives the classic
N(0, I) prior and its closed-form KL.
Reports the ELBO, its reconstruction and KL terms, PSNR; pictures of reconstructions,
prior samples, latent interpolations and (latent_dim=2) the latent scatter by class;
at the end the Fréchet distance of prior samples in the features of a shapes classifier.

`data=PATH`: your images instead of `shapes`: a folder (flat, or one sub-folder per class),
an .npz of `image` (and `label`) arrays or hf:<dataset>, fitted to image_size, greyscale;
with 2 or more classes the Fréchet distance is measured in a classifier of them.
"""

from configs.base import base_config, own_images, parse_options, shrink_for_smoke
from dl_arch.data.image_files import data_classes
from dl_arch.evaluators.frechet import frechet_section


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="conv_vae", latent_dim=16, beta=1.0, image_size=32,
                         num_classes=4, prior=64, steps=8000, data="")
    classes = data_classes(opts.data)
    # a user's data is labelled when it says so (class folders, a label array)
    num_classes = len(classes or ()) if opts.data else opts.num_classes
    c = base_config()
    c.task = dict(
        name="autoencoding",
        # -log N(x; decoder(z), decoder_std^2) summed over pixels (the choice against bce:
        # docs/results/tuning_notes.md)
        reconstruction_loss="gaussian",  # gaussian | bce | mse
        decoder_std=0.2,  # pixel std of the "gaussian" decoder (smaller: sharper, more KL)
        corruption="none",  # none | gaussian | masking | salt_pepper
        noise_level=0.0,
        beta=opts.beta,  # KL weight: 1 = the ELBO, > 1 = beta-VAE
    )
    # pictures at every evaluation; the Fréchet distance at the end (its feature classifier
    # needs classes)
    c.evaluators = ("reconstructions", "prior_samples", "latent_scatter") + (
        ("frechet",) if num_classes >= 2 else ())
    c.model = dict(
        name=opts.model,  # conv_vae | dense_vae
        image_shape=(opts.image_size, opts.image_size, 1),  # (H, W, C) of the data
        latent_dim=opts.latent_dim,  # dimensions of the Gaussian latent
        features=(32, 64, 128),  # conv: channels of the stride-2 encoder convolutions
        hidden_sizes=(512, 256),  # dense: encoder widths (the decoder mirrors them)
        norm="group",  # conv: none | group (GroupNorm after each hidden convolution)
        # 0: N(0, I) prior with the closed-form KL; K: a learned mixture of K Gaussians (KL
        # estimated at the drawn z); the comparison is in docs/results/tuning_notes.md
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
    if "frechet" in c.evaluators:
        c.frechet = frechet_section(num_classes=num_classes, smoke=opts.smoke)
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
    if opts.data:
        own_images(c, opts.data, classes, opts.image_size, 1, labelled=False)
    return c
