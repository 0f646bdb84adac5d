"""Autoencoders and VAEs: ELBO terms vs numpy, reparameterisation gradients, overfitting."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dl_arch.config.resolve import resolve_config
from dl_arch.evaluators.base import EvalContext, build_evaluators, write_report
from dl_arch.evaluators.frechet import Frechet, frechet_section
from dl_arch.models import autoencoder
from dl_arch.registry import MODELS
from dl_arch.tasks import autoencoding, image_grids
from dl_arch.train.loop import build_task


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def task_config(model: str, **task_fields) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.dtype = "float32"
    c.param_dtype = "float32"
    c.model = ml_collections.ConfigDict({"name": model})
    c.task = ml_collections.ConfigDict({"name": "autoencoding", **task_fields})
    c.dataset = ml_collections.ConfigDict({
        "name": "shapes", "image_size": 8, "channels": 1, "num_classes": 3, "noise": 0.0,
        "train_split": "train", "eval_split": "test", "num_eval_examples": 64})
    return c


def toy_images(n: int = 8, size: int = 8, seed: int = 0) -> np.ndarray:
    """Bright squares at random places on a dark background, (n, size, size, 1)."""
    rng = np.random.default_rng(seed)
    x = np.full((n, size, size, 1), 0.1, np.float32)
    for i in range(n):
        r, c = rng.integers(0, size - 3, size=2)
        x[i, r:r + 3, c:c + 3] = 0.9
    return x


# ---------- the ELBO terms against numpy ----------

def test_gaussian_kl_matches_numpy_and_monte_carlo():
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(size=(3, 5)), rng.normal(size=(3, 5)) * 0.5
    ours = np.asarray(autoencoder.gaussian_kl(jnp.asarray(mean), jnp.asarray(logvar)))
    closed = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1.0 - logvar, axis=-1)
    np.testing.assert_allclose(ours, closed, rtol=1e-5)
    # an independent estimate: E_q[log q(z) - log p(z)] by sampling
    std = np.exp(0.5 * logvar)
    z = mean + std * rng.normal(size=(200_000, 3, 5))
    log_q = -0.5 * (((z - mean) / std) ** 2 + logvar + np.log(2 * np.pi))
    log_p = -0.5 * (z**2 + np.log(2 * np.pi))
    np.testing.assert_allclose(ours, (log_q - log_p).sum(-1).mean(0), rtol=0.02, atol=0.01)


def test_elbo_terms_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(4, 6, 6, 1)).astype(np.float32)
    logits = rng.normal(size=x.shape).astype(np.float32) * 2
    mean = rng.normal(size=(4, 3)).astype(np.float32)
    logvar = rng.normal(size=(4, 3)).astype(np.float32)
    out = {"logits": jnp.asarray(logits), "mean": jnp.asarray(mean), "logvar": jnp.asarray(logvar)}
    beta = 0.5
    terms = autoencoding.autoencoder_terms(out, jnp.asarray(x), jnp.asarray(x), "bce", beta)
    p = np_sigmoid(logits.astype(np.float64))
    recon = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(4, -1).sum(1)
    kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1 - logvar, axis=1)
    chex.assert_trees_all_close(
        {k: np.asarray(terms[k]) for k in ("recon", "kl", "elbo", "loss")},
        {"recon": recon, "kl": kl, "elbo": -(recon + kl), "loss": recon + beta * kl},
        rtol=1e-5, atol=1e-4)
    mse_terms = autoencoding.autoencoder_terms(out, jnp.asarray(x), jnp.asarray(x), "mse", 1.0)
    mse = ((p - x) ** 2).reshape(4, -1)
    np.testing.assert_allclose(np.asarray(mse_terms["recon"]), mse.sum(1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(mse_terms["psnr"]),
                               -10 * np.log10(mse.mean(1)), rtol=1e-5)


def test_gaussian_decoder_term_is_the_normal_negative_log_likelihood():
    from scipy import stats

    rng = np.random.default_rng(3)
    x = rng.uniform(size=(3, 5, 5, 2)).astype(np.float32)
    logits = rng.normal(size=x.shape).astype(np.float32)
    for std in (0.05, 0.3):
        ours = autoencoding.reconstruction_error(jnp.asarray(logits), jnp.asarray(x),
                                                 "gaussian", std)
        nll = -stats.norm.logpdf(x, loc=np_sigmoid(logits.astype(np.float64)), scale=std)
        np.testing.assert_allclose(np.asarray(ours), nll.reshape(3, -1).sum(1), rtol=1e-5)
    # the ELBO uses it unchanged: elbo = -(recon + kl)
    out = {"logits": jnp.asarray(logits), "mean": jnp.zeros((3, 2)), "logvar": jnp.zeros((3, 2))}
    terms = autoencoding.autoencoder_terms(out, jnp.asarray(x), jnp.asarray(x), "gaussian",
                                           1.0, 0.05)
    np.testing.assert_allclose(np.asarray(terms["elbo"]), -np.asarray(terms["recon"]),
                               rtol=1e-6)


def test_task_loss_is_the_elbo_of_the_model_output():
    """The VAE task's loss and metrics equal numpy's ELBO of the model's own z and logits."""
    config = task_config("dense_vae_tiny", beta=2.0)
    task = build_task(config)
    x = jnp.asarray(toy_images(4))
    variables = jax.jit(task.init_variables)(jax.random.key(0), {"image": x})
    rng = jax.random.key(7)
    loss, (metrics, _) = task.loss("all", variables["params"], {}, {"image": x}, rng)
    _, latent_rng, _ = jax.random.split(rng, 3)  # the task's (noise, latent, dropout) keys
    out = task.model.apply(variables, x, train=True, rngs={"latent": latent_rng})
    mean, logvar, logits = (np.asarray(out[k], np.float64) for k in ("mean", "logvar", "logits"))
    xs = np.asarray(x, np.float64)
    p = np_sigmoid(logits)
    recon = -(xs * np.log(p) + (1 - xs) * np.log(1 - p)).reshape(4, -1).sum(1)
    kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1 - logvar, axis=1)
    np.testing.assert_allclose(float(loss), np.mean(recon + 2.0 * kl), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["elbo"]), -np.mean(recon + kl), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["kl"]), np.mean(kl), rtol=1e-5)
    # z really is mean + sigma * eps with a fresh standard-normal eps
    eps = (np.asarray(out["z"]) - mean) / np.exp(0.5 * logvar)
    assert not np.allclose(eps, 0.0)


# ---------- the reparameterisation trick ----------

def test_reparameterisation_gradient_matches_analytic():
    """d/d(mean, logvar) of a Monte Carlo E[f(z)] through z = mean + sigma*eps is exact."""
    mean = jnp.array([0.3, -1.2, 0.8])
    logvar = jnp.array([-0.5, 0.2, 0.0])
    eps = jax.random.normal(jax.random.key(0), (400_000, 3))

    def mc(f):
        return lambda m, lv: jnp.mean(jnp.sum(
            f(autoencoder.reparameterize(m[None], lv[None], eps)), -1))

    # E[z^2] = mean^2 + var; E[sin z] = sin(mean) exp(-var / 2)
    g_sq = jax.grad(mc(jnp.square), argnums=(0, 1))(mean, logvar)
    var = np.exp(np.asarray(logvar))
    m = np.asarray(mean)
    np.testing.assert_allclose(g_sq[0], 2 * m, atol=0.02)
    np.testing.assert_allclose(g_sq[1], var, atol=0.02)
    g_sin = jax.grad(mc(jnp.sin), argnums=(0, 1))(mean, logvar)
    np.testing.assert_allclose(g_sin[0], np.cos(m) * np.exp(-var / 2), atol=0.01)
    np.testing.assert_allclose(g_sin[1], -0.5 * var * np.sin(m) * np.exp(-var / 2), atol=0.01)


def test_sampling_flows_gradients_to_the_variance_head():
    config = task_config("dense_vae_tiny")
    task = build_task(config)
    x = jnp.asarray(toy_images(4))
    params = jax.jit(task.init_variables)(jax.random.key(0), {"image": x})["params"]

    def recon_only(p):  # without the KL term, logvar is reached only through z
        return task.loss("all", p, {}, {"image": x}, jax.random.key(1))[1][0]["recon"]

    grads = jax.grad(recon_only)(params)
    assert float(jnp.abs(grads["latent_logvar"]["kernel"]).sum()) > 0


# ---------- corruption and PSNR ----------

def test_corruptions_have_the_requested_statistics():
    x = jnp.full((64, 32, 32, 3), 0.5)
    key = jax.random.key(3)
    g = np.asarray(autoencoding.corrupt(x, key, "gaussian", 0.1))
    assert abs(np.std(g - 0.5) - 0.1) < 0.005
    masked = np.asarray(autoencoding.corrupt(x, key, "masking", 0.3))
    assert abs(np.mean(masked == 0.0) - 0.3) < 0.01
    assert np.all(masked == masked[..., :1])  # channels of a pixel are dropped together
    sp = np.asarray(autoencoding.corrupt(x, key, "salt_pepper", 0.2))
    assert abs(np.mean(sp != 0.5) - 0.2) < 0.01
    assert abs(np.mean(sp == 1.0) - 0.1) < 0.01
    np.testing.assert_array_equal(autoencoding.corrupt(x, key, "none", 0.5), x)
    with pytest.raises(ValueError, match="config.task.corruption"):
        autoencoding.corrupt(x, key, "blur", 0.1)


def test_psnr_matches_numpy():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(size=(2, 3, 5, 5, 1))
    ours = np.asarray(autoencoding.psnr(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_allclose(ours, 10 * np.log10(1.0 / ((a - b) ** 2).reshape(3, -1).mean(1)),
                               rtol=1e-5)


# ---------- models ----------

@pytest.mark.parametrize("name", ["dense_ae_tiny", "conv_ae_tiny", "dense_vae_tiny",
                                  "conv_vae_tiny"])
def test_shapes_and_prior_decode(name):
    model = MODELS.get(name)()
    x = jnp.asarray(toy_images(3))
    variables = jax.jit(model.init)({"params": jax.random.key(0), "latent": jax.random.key(1)}, x)
    out = model.apply(variables, x, train=True, rngs={"latent": jax.random.key(2)})
    chex.assert_shape(out["logits"], (3, 8, 8, 1))
    chex.assert_shape(out["z"], (3, model.latent_dim))
    assert out["logits"].dtype == jnp.float32
    samples = model.apply(variables, jnp.zeros((5, model.latent_dim)), method="decode")
    chex.assert_shape(samples, (5, 8, 8, 1))
    if model.variational:  # eval mode uses the mean; train mode samples
        det = model.apply(variables, x)
        np.testing.assert_allclose(det["z"], det["mean"])
        assert not np.allclose(out["z"], out["mean"])


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def dense_count(sizes) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def test_published_parameter_counts():
    def params_of(name):
        m = MODELS.get(name)()
        shapes = jax.eval_shape(lambda k: m.init({"params": k, "latent": k},
                                                 jnp.zeros((1, 28, 28, 1))), jax.random.key(0))
        return count(shapes["params"])

    # Hinton & Salakhutdinov 2006: 784-1000-500-250-30 and the mirrored decoder
    layers = [784, 1000, 500, 250, 30]
    expected = dense_count(layers) + dense_count(layers[::-1])
    assert params_of("dense_ae_hinton2006") == expected == 2_837_314
    # Kingma & Welling VAE, 400 hidden units and 20 latents (pytorch/examples VAE: 652,824)
    expected = dense_count([784, 400]) + 2 * dense_count([400, 20]) + dense_count([20, 400, 784])
    assert params_of("dense_vae_kingma2013") == expected == 652_824


def test_bad_config_fails_with_the_field_name():
    with pytest.raises(ValueError, match="config.model.image_shape"):
        m = MODELS.get("conv_ae")(image_shape=(30, 30, 1))
        m.init(jax.random.key(0), jnp.zeros((1, 30, 30, 1)))
    with pytest.raises(ValueError, match="config.model.image_shape"):
        m = MODELS.get("dense_ae_tiny")()
        m.init(jax.random.key(0), jnp.zeros((1, 9, 9, 1)))
    with pytest.raises(ValueError, match="config.task.corruption"):
        build_task(task_config("dense_ae_tiny", corruption="blur"))
    with pytest.raises(ValueError, match="config.task.reconstruction_loss"):
        build_task(task_config("dense_ae_tiny", reconstruction_loss="l1"))
    with pytest.raises(ValueError, match="config.task.decoder_std"):
        build_task(task_config("dense_ae_tiny", reconstruction_loss="gaussian",
                                              decoder_std=0.0))
    with pytest.raises(ValueError, match="config.model.norm"):
        MODELS.get("conv_ae_tiny")(norm="batch").init(jax.random.key(0),
                                                     jnp.zeros((1, 8, 8, 1)))
    for name, k in (("dense_vae_tiny", -1), ("dense_ae_tiny", 4)):
        with pytest.raises(ValueError, match="config.model.prior_components"):
            MODELS.get(name)(prior_components=k).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="config.model.architecture"):
        MODELS.get("dense_ae")(architecture="mlp").init(jax.random.key(0),
                                                       jnp.zeros((1, 28, 28, 1)))


def test_group_norm_encoder_matches_numpy():
    """norm='group': each hidden conv output is normalised over (H, W, channels of a group)
    per example, then scaled and shifted; checked on the encoder's first layer."""
    enc = autoencoder.ConvEncoder(features=(16,), norm="group")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)), jnp.float32)
    variables = jax.jit(enc.init)(jax.random.key(0), x)
    p = jax.tree.map(np.asarray, variables["params"])
    p["norm_0"]["scale"] = np.linspace(0.5, 2.0, 16).astype(np.float32)
    p["norm_0"]["bias"] = np.linspace(-1.0, 1.0, 16).astype(np.float32)
    ours = np.asarray(enc.apply({"params": p}, x)).reshape(2, 4, 4, 16)
    h = np.asarray(jax.lax.conv_general_dilated(
        x, p["conv_0"]["kernel"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ) + p["conv_0"]["bias"]
    g = h.reshape(2, 4, 4, 8, 2).astype(np.float64)  # 8 groups of 2 channels
    mean = g.mean(axis=(1, 2, 4), keepdims=True)
    var = g.var(axis=(1, 2, 4), keepdims=True)
    normed = ((g - mean) / np.sqrt(var + 1e-6)).reshape(2, 4, 4, 16)
    expected = np.maximum(normed * p["norm_0"]["scale"] + p["norm_0"]["bias"], 0.0)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


# ---------- overfitting one batch ----------

@pytest.mark.parametrize("name,corruption,norm,prior", [
    ("dense_ae_tiny", "none", "none", 0),
    ("conv_ae_tiny", "masking", "none", 0),
    ("conv_ae_tiny", "none", "group", 0),
    ("dense_vae_tiny", "none", "none", 4),
    ("conv_vae_tiny", "none", "none", 0),
    ("conv_vae_tiny", "none", "group", 0)])
def test_overfits_one_batch(name, corruption, norm, prior):
    config = task_config(name, reconstruction_loss="mse", corruption=corruption,
                         noise_level=0.2, beta=0.01)
    config.model.norm = norm
    config.model.prior_components = prior
    task = build_task(config)
    batch = {"image": jnp.asarray(toy_images(8))}
    params = jax.jit(task.init_variables)(jax.random.key(0), batch)["params"]
    opt = optax.adam(3e-3)
    opt_state = jax.jit(opt.init)(params)  # one program, not one per parameter shape

    @jax.jit
    def step(params, opt_state, i):
        grads, (metrics, _) = jax.grad(lambda p: task.loss("all", p, {}, batch,
                                                           jax.random.key(i)), has_aux=True)(
            params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, metrics

    first = None
    for i in range(400):
        params, opt_state, metrics = step(params, opt_state, i)
        first = first if first is not None else float(metrics["mse"])
    final = task.eval_metrics({"params": params}, batch)
    mse = float(final["mse"][0] / final["mse"][1])
    assert mse < 0.1 * first, (first, mse)
    assert float(final["psnr"][0] / final["psnr"][1]) > 20.0


def test_evaluators_draw_the_pictures_of_a_vae(tmp_path):
    """reconstructions: clean / noisy / denoised rows of the real (unpadded) eval images and
    latent interpolation strips; prior_samples: the prior's draws for sample_seed;
    latent_scatter (latent_dim 2): the eval codes. Written by the loop's report writer."""
    config = task_config("dense_vae_tiny", corruption="gaussian", noise_level=0.1)
    config.model.latent_dim = 2
    config = resolve_config(config)
    task = build_task(config)
    x = toy_images(9)
    variables = jax.jit(task.init_variables)(jax.random.key(0), {"image": jnp.asarray(x)})
    evaluators = build_evaluators(config, task)
    assert [e.name for e in evaluators] == ["reconstructions", "prior_samples", "latent_scatter"]
    assert all(e.due(1000, final=False) for e in evaluators)  # pictures at every evaluation
    mask = np.ones(9)
    mask[0] = 0  # a padding row is not drawn
    ctx = EvalContext(variables=variables, metrics={}, batch={"image": x, "_mask": mask},
                      step=5, final=True, workdir=str(tmp_path), eval_batches=lambda: [])
    images = {}
    for evaluator in evaluators:
        report = evaluator(ctx)
        write_report(report, 5, True, str(tmp_path), None)
        images.update(report.images)
    assert set(images) == {"denoising", "interpolation", "prior_samples", "latent_scatter"}
    for picture in images.values():
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
    real = x[1:]
    noisy = np.asarray(autoencoding.corrupt(jnp.asarray(real), jax.random.key(0), "gaussian",
                                            0.1))
    recon = jax.nn.sigmoid(task.model.apply(variables, jnp.asarray(noisy), sample=False)
                           ["logits"])
    want = image_grids.comparison_grid([real, noisy, np.asarray(recon)])
    assert images["denoising"].shape == want.shape
    assert np.abs(images["denoising"].astype(int) - want.astype(int)).max() <= 1
    z = task.model.apply(variables, jnp.asarray(real), method="encode")["mean"]
    strips = np.concatenate([image_grids.interpolate(z[2 * i], z[2 * i + 1], 10)
                             for i in range(4)])
    decoded = jax.nn.sigmoid(task.model.apply(variables, jnp.asarray(strips), method="decode"))
    want = image_grids.make_grid(np.asarray(decoded), 10)
    assert np.abs(images["interpolation"].astype(int) - want.astype(int)).max() <= 1
    want = image_grids.make_grid(task.generate_images(variables, 64, 1234), 8)
    assert np.abs(images["prior_samples"].astype(int) - want.astype(int)).max() <= 1
    assert images["latent_scatter"].std() > 10  # points and axes, not a blank canvas
    assert (tmp_path / "prior_samples.png").exists()
    assert (tmp_path / "images" / "denoising_000005.png").exists()
    samples = task.sample(variables, ml_collections.ConfigDict(
        {**task.config.sample.to_dict(), "num_samples": 3}), str(tmp_path))
    chex.assert_shape(samples, (3, 8, 8, 1))


def test_plain_autoencoder_draws_reconstructions_only():
    """Without a prior (or with latent_dim != 2) the default prior_samples / latent_scatter
    draw nothing; the frechet evaluator, which needs a prior, fails in one line."""
    config = resolve_config(task_config("conv_ae_tiny"))
    task = build_task(config)
    x = toy_images(4)
    variables = jax.jit(task.init_variables)(jax.random.key(0), {"image": jnp.asarray(x)})
    ctx = EvalContext(variables=variables, metrics={}, batch={"image": x}, step=1, final=False,
                      workdir="", eval_batches=lambda: [])
    drawn = {e.name: set(e(ctx).images) for e in build_evaluators(config, task)}
    assert drawn == {"reconstructions": {"reconstruction", "interpolation"},
                     "prior_samples": set(), "latent_scatter": set()}
    with pytest.raises(ValueError, match="draws no images"):
        Frechet(ml_collections.ConfigDict({**config.to_dict(), "frechet": frechet_section(3)}),
                task)
    with pytest.raises(ValueError, match="no prior"):
        task.generate_images(variables, 2, 0)


# ---------- configs ----------

AE_CONFIGS = ["configs/ae_shapes.py", "configs/dae_shapes.py", "configs/vae_shapes.py",
              "configs/vae_mnist.py", "configs/ae_fashion_mnist.py"]


@pytest.mark.parametrize("path", AE_CONFIGS)
def test_config_builds_on_its_data(path):
    """Each smoke config's model takes its dataset's batches (TFDS through mock data)."""
    import tensorflow_datasets as tfds

    from dl_arch.testing import first_batch, load_config

    config = load_config(f"{path}:smoke")
    task = build_task(config)
    with tfds.testing.mock_data(num_examples=40):
        batch = first_batch(config, task)
    variables = jax.eval_shape(task.init_variables, jax.random.key(0), batch)
    loss, (metrics, _) = jax.eval_shape(
        lambda v: task.loss("all", v["params"], {}, batch, jax.random.key(1)), variables)
    assert loss.shape == () and "psnr" in metrics


def test_vae_mnist_smoke_end_to_end_on_mock_data(tmp_path):
    """The TFDS config trains, evaluates, draws its pictures and scores the Fréchet distance
    (its classifier saved in the workdir)."""
    import tensorflow_datasets as tfds

    from dl_arch.testing import load_config
    from dl_arch.train.loop import train_and_evaluate
    from dl_arch.train.writers import read_metrics

    config = load_config("configs/vae_mnist.py:smoke,latent_dim=2")
    config.num_train_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
    config.eval_max_batches = 1
    config.progress = "none"
    with tfds.testing.mock_data(num_examples=64):
        summary = train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(summary["eval/elbo"]) and summary["eval/kl"] >= 0
    names = {p.name for p in (tmp_path / "images").iterdir()}
    for picture in ("reconstruction", "prior_samples", "interpolation", "latent_scatter"):
        assert f"{picture}_000002.png" in names and (tmp_path / f"{picture}.png").exists()
    final = {k: v for row in read_metrics(str(tmp_path)) for k, v in row.items()}
    assert np.isfinite(final["eval/frechet_distance"]) and final["eval/frechet_distance"] > 0
    assert summary["eval/frechet_distance"] == final["eval/frechet_distance"]
    assert np.isfinite(summary["eval/frechet_real_floor"])  # mock splits: the same images, ~0
    assert 0 <= summary["eval/frechet_classifier_accuracy"] <= 1
    assert (tmp_path / "frechet_classifier.npz").exists()
