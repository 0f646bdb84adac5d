"""Denoising convolutional autoencoder on grayscale single-shape `shapes` images (offline).

    python launch.py --config=configs/dae_shapes.py --workdir=runs/dae_shapes
    python launch.py --config=configs/dae_shapes.py:corruption=salt_pepper,noise_level=0.2 \
        --workdir=runs/dae_sp
    python launch.py --config=configs/dae_shapes.py:smoke --workdir=/tmp/dae_shapes_smoke
    python launch.py --config=configs/dae_shapes.py:data=/data/my_images --workdir=runs/dae_mine

The model sees a corrupted image and is scored against the clean one; eval reports the
PSNR of the corrupted input (psnr_noisy) and of the reconstruction (psnr). Pictures:
clean / noisy / denoised rows in <workdir>/images and TensorBoard.

`data=PATH`: your images instead of `shapes`: a folder (flat, or one sub-folder per class),
an .npz of `image` (and `label`) arrays or hf:<dataset>, fitted to image_size, greyscale;
classes, when the data has them, colour the latent scatter.
"""

from configs.base import base_config, own_images, parse_options, shrink_for_smoke
from dl_arch.data.image_files import data_classes


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="conv_ae", corruption="gaussian", noise_level=0.3,
                         latent_dim=64, image_size=32, num_classes=4, steps=8000, data="")
    c = base_config()
    c.task = dict(
        name="autoencoding",
        reconstruction_loss="bce",  # bce (Bernoulli decoder) | gaussian | mse
        decoder_std=0.1,  # pixel std of the "gaussian" decoder (smaller: sharper, more KL)
        corruption=opts.corruption,  # gaussian | masking | salt_pepper | none
        noise_level=opts.noise_level,  # Gaussian std, or fraction of pixels masked / flipped
        beta=1.0,  # KL weight (VAE models only)
    )
    # pictures at every evaluation: the task's evaluators (reconstructions, prior_samples for
    # VAE models, latent_scatter for latent_dim=2) with their declared defaults
    c.model = dict(
        name=opts.model,  # conv_ae | dense_ae
        image_shape=(opts.image_size, opts.image_size, 1),  # (H, W, C) of the data
        latent_dim=opts.latent_dim,  # bottleneck width
        features=(32, 64, 128),  # conv: channels of the stride-2 encoder convolutions
        hidden_sizes=(512, 256),  # dense: encoder widths (the decoder mirrors them)
        norm="group",  # conv: none | group (GroupNorm after each hidden convolution)
        activation="relu",
    )
    c.dataset.name = "shapes"
    c.dataset.image_size = opts.image_size
    c.dataset.channels = 1  # grayscale
    c.dataset.num_classes = opts.num_classes  # first k of circle, square, triangle, star, ...
    c.dataset.num_objects = 1  # one shape per image
    c.dataset.noise = 0.0  # clean targets: all noise comes from config.task.corruption
    c.dataset.num_train_examples = None  # endless: every batch is fresh
    c.dataset.num_eval_examples = 512
    c.batch_size = 64
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 1000
    c.checkpoint_every_steps = 1000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 100
    if opts.smoke:
        shrink_for_smoke(c)
    if opts.data:
        own_images(c, opts.data, data_classes(opts.data), opts.image_size, 1, labelled=False)
    return c
