"""Generative family: one full training step, ours (the shared loop's jitted train_step)
against the same network and optimiser in PyTorch (eager, CPU threads as configured).

    python -m benchmarks.run --only generative [--quick]

Rows: DCGAN (discriminator step then generator step, Adam each; the PyTorch DCGAN
example's architecture) and the fully connected VAE (the pytorch/examples VAE).
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import ml_collections
import numpy as np

from benchmarks.harness import Row, compare, mfu_text
from benchmarks.loop_step import loop_stepper
from benchmarks.phases import phase_text, trainer_loss
from configs.base import base_config
from dl_arch.train.flops import step_flops
from dl_arch.train.trainer import Trainer


def _ours(config: ml_collections.ConfigDict, images: np.ndarray):
    """(run, flops, phases): a zero-argument callable running one call of the loop's
    jitted, buffer-donating step (`loop_step`), its FLOPs, and `phases(quick)` -> its
    per-phase breakdown text."""
    trainer = Trainer(config)
    batch = {"image": jax.numpy.asarray(images)}
    run, held = loop_stepper(trainer, batch)
    flops = step_flops(held["step"], held["state"], held["batch"], held["window"])
    loss_fn, args = trainer_loss(trainer, lambda: held["state"], batch)
    return run, flops, lambda quick: phase_text(loss_fn, args, run, quick)


def _dcgan_config(image_size: int, channels: int, features: int, stages: int,
                  batch: int) -> ml_collections.ConfigDict:
    c = base_config()
    c.dtype = "float32"
    c.batch_size = batch
    c.task = ml_collections.ConfigDict({"name": "gan"})
    c.model = ml_collections.ConfigDict({
        "name": "dcgan", "image_shape": (image_size, image_size, channels), "latent_dim": 100,
        "generator_features": features, "discriminator_features": features,
        "num_stages": stages})
    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    return c


def _torch_dcgan(image_size: int, channels: int, features: int, stages: int, batch: int):
    """The PyTorch DCGAN example's G and D with the same sizes, and its training step."""
    import torch
    from torch import nn

    s0 = image_size // 2**stages
    width = features * 2 ** (stages - 1)
    g_layers = [nn.ConvTranspose2d(100, width, s0, 1, 0, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(True)]
    for _ in range(stages - 1):
        g_layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                     nn.BatchNorm2d(width // 2), nn.ReLU(True)]
        width //= 2
    g_layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
    d_layers, c_in = [], channels
    for i in range(stages):
        c_out = features * 2**i
        d_layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
        if i > 0:
            d_layers += [nn.BatchNorm2d(c_out)]
        d_layers += [nn.LeakyReLU(0.2, inplace=True)]
        c_in = c_out
    d_layers += [nn.Conv2d(c_in, 1, s0, 1, 0, bias=False), nn.Flatten()]
    net_g, net_d = nn.Sequential(*g_layers), nn.Sequential(*d_layers)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    real = torch.rand(batch, channels, image_size, image_size) * 2 - 1
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def run():
        net_d.zero_grad()
        fake = net_g(torch.randn(batch, 100, 1, 1))
        loss_d = bce(net_d(real), ones) + bce(net_d(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        net_g.zero_grad()
        loss_g = bce(net_d(net_g(torch.randn(batch, 100, 1, 1))), ones)
        loss_g.backward()
        opt_g.step()
        return loss_g.item()

    return run


def _vae_config(batch: int) -> ml_collections.ConfigDict:
    c = base_config()
    c.dtype = "float32"
    c.batch_size = batch
    c.task = ml_collections.ConfigDict({"name": "autoencoding", "reconstruction_loss": "bce"})
    c.model = ml_collections.ConfigDict({"name": "dense_vae_kingma2013"})
    return c


def _torch_vae(batch: int):
    """The pytorch/examples VAE (784-400-20) and its training step with Adam."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), \
                nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 784)

    def run():
        opt.zero_grad()
        logits, mu, logvar = model(x)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (recon + kl) / batch
        loss.backward()
        opt.step()
        return loss.item()

    return run


def rows(quick: bool) -> Iterator[Row]:
    rng = np.random.default_rng(0)
    # (image size, channels, base features, stages, batch)
    sizes = [(32, 1, 32, 3, 32)] if quick else [(32, 3, 64, 3, 64), (64, 3, 64, 4, 64)]
    for size, ch, feats, stages, batch in sizes:
        images = rng.uniform(size=(batch, size, size, ch)).astype(np.float32)
        ours, flops, phases = _ours(_dcgan_config(size, ch, feats, stages, batch), images)
        row = compare(f"dcgan {size}x{size}x{ch} f={feats} B={batch} train step", ours,
                      _torch_dcgan(size, ch, feats, stages, batch), "torch", quick,
                      extra=lambda s, f=flops, b=batch: f"images/s={b / s:.0f} "
                      + mfu_text(f, s, quick))
        row.extra += " " + phases(quick)
        yield row
    batch = 128
    images = rng.uniform(size=(batch, 28, 28, 1)).astype(np.float32)
    ours, flops, phases = _ours(_vae_config(batch), images)
    row = compare(f"vae 784-400-20 B={batch} train step", ours, _torch_vae(batch), "torch",
                  quick, extra=lambda s: f"images/s={batch / s:.0f} " + mfu_text(flops, s, quick))
    row.extra += " " + phases(quick)
    yield row
