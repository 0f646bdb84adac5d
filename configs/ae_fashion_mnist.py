"""Convolutional autoencoder on TFDS Fashion-MNIST (prepare once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/ae_fashion_mnist.py --workdir=runs/ae_fashion_mnist
    python launch.py --config=configs/ae_fashion_mnist.py:corruption=masking,noise_level=0.5 \
        --workdir=runs/dae_fashion_mnist
    python launch.py --config=configs/ae_fashion_mnist.py:model=dense_ae_hinton2006 \
        --workdir=runs/hinton_fashion_mnist
    python launch.py --config=configs/ae_fashion_mnist.py:smoke --workdir=/tmp/ae_fm_smoke

Pictures of inputs vs reconstructions (clean / noisy / denoised with a corruption) and
latent interpolations in <workdir>/images and TensorBoard (evaluator `reconstructions`);
eval reports MSE and PSNR.
"""

from configs.base import base_config, parse_options, shrink_for_smoke


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="conv_ae", latent_dim=32, corruption="none",
                         noise_level=0.0, steps=10000)
    c = base_config()
    c.task = dict(
        name="autoencoding",
        reconstruction_loss="bce",  # bce (Bernoulli decoder) | gaussian | mse
        decoder_std=0.1,  # pixel std of the "gaussian" decoder (smaller: sharper, more KL)
        corruption=opts.corruption,  # none | gaussian | masking | salt_pepper (denoising)
        noise_level=opts.noise_level,  # Gaussian std, or fraction of pixels masked / flipped
        beta=1.0,  # KL weight (VAE models only)
    )
    # pictures at every evaluation (the task's evaluators: reconstructions, prior_samples
    # (VAE models only), latent_scatter (latent_dim=2 only))
    c.latent_scatter = dict(scatter_examples=2000)  # test images in the 2-D latent scatter
    c.model = dict(
        name=opts.model,  # conv_ae | dense_ae | dense_ae_hinton2006
        image_shape=(28, 28, 1),  # (H, W, C) of Fashion-MNIST
    )
    if opts.model != "dense_ae_hinton2006":  # the published size fixes its own widths
        c.model.latent_dim = opts.latent_dim  # bottleneck width
    if opts.model == "conv_ae":
        c.model.features = (32, 64)  # stride-2 convolutions: 28 -> 14 -> 7
    c.dataset.name = "tfds:fashion_mnist"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.batch_size = 128
    c.num_train_steps = opts.steps
    c.log_every_steps = 100
    c.eval_every_steps = 2000
    c.checkpoint_every_steps = 2000
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.schedule = "warmup_cosine"
    c.optimizer.warmup_steps = 200
    if opts.smoke:
        shrink_for_smoke(c)
    return c
