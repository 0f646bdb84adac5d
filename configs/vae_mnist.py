"""VAE on TFDS MNIST (needs the dataset prepared once: pip install 'dl_arch[tfds]').

    python launch.py --config=configs/vae_mnist.py --workdir=runs/vae_mnist
    python launch.py --config=configs/vae_mnist.py:latent_dim=2 --workdir=runs/vae_mnist_2d
    python launch.py --config=configs/vae_mnist.py:model=conv_vae --workdir=runs/conv_vae_mnist
    python launch.py --config=configs/vae_mnist.py:smoke --workdir=/tmp/vae_mnist_smoke

Default model: the fully connected VAE of Kingma & Welling (784-400-20, 652,824 weights).
Reports the ELBO (nats per image), reconstruction and KL; pictures of reconstructions,
prior samples, interpolations and (latent_dim=2) the latent scatter coloured by digit; at
the end the Fréchet distance of prior samples in the features of an MNIST classifier.
"""

from configs.base import base_config, parse_options, shrink_for_smoke
from dl_arch.evaluators.frechet import frechet_section


def get_config(arg: str | None = None):
    opts = parse_options(arg, model="dense_vae_kingma2013", latent_dim=20, beta=1.0,
                         steps=10000)
    c = base_config()
    c.task = dict(
        name="autoencoding",
        reconstruction_loss="bce",  # -log p(x|z) of a Bernoulli decoder, summed over pixels
        decoder_std=0.1,  # pixel std of the "gaussian" decoder (smaller: sharper, more KL)
        corruption="none",  # none | gaussian | masking | salt_pepper
        noise_level=0.0,
        beta=opts.beta,  # KL weight: 1 = the ELBO, > 1 = beta-VAE
    )
    # pictures at every evaluation; the Fréchet distance at the end
    c.evaluators = ("reconstructions", "prior_samples", "latent_scatter", "frechet")
    c.latent_scatter = dict(scatter_examples=2000)  # test images in the 2-D latent scatter
    c.model = dict(
        name=opts.model,  # dense_vae_kingma2013 | dense_vae | conv_vae
        image_shape=(28, 28, 1),  # (H, W, C) of MNIST
        latent_dim=opts.latent_dim,  # dimensions of the Gaussian latent
        prior_components=0,  # 0: N(0, I) prior (closed-form KL); K: learned mixture of K Gaussians
    )
    if opts.model == "conv_vae":
        c.model.features = (32, 64)  # stride-2 convolutions: 28 -> 14 -> 7
    c.dataset.name = "tfds:mnist"
    c.dataset.train_split = "train"
    c.dataset.eval_split = "test"
    c.frechet = frechet_section(num_classes=10, smoke=opts.smoke)
    c.sample = dict(num_samples=64, seed=0, output="vae_mnist_samples.png")  # --sample
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
