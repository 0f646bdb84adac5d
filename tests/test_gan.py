"""DCGAN: losses vs numpy, phase-separated updates in the real train step (k D updates by
hand), the weight average and its pictures, overfit, resume, the gan_samples evaluator."""

from __future__ import annotations

import functools
import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dl_arch.evaluators.base import EvalContext, build_evaluators, write_report
from dl_arch.evaluators.frechet import frechet_section
from dl_arch.models.gan import Discriminator
from dl_arch.registry import MODELS
from dl_arch.tasks import gan, image_grids
from dl_arch.testing import first_batch, load_config
from dl_arch.train.checkpoints import restore_raw_state
from dl_arch.train.loop import build_task, train_and_evaluate
from dl_arch.train.trainer import Trainer


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    """configs/dcgan_shapes.py:smoke shrunk to 8x8 images and a few-thousand-weight GAN,
    without the class head, on the random-grey palette, drawing only its samples (the
    config's weight average, decay 0.999, kept)."""
    c = load_config("configs/dcgan_shapes.py:smoke,image_size=8,features=4,latent_dim=4")
    c.model.num_stages = 2
    c.batch_size = 8
    c.eval_batch_size = 8
    c.dataset.num_eval_examples = 16
    del c.frechet
    c.evaluators = ("gan_samples",)
    c.dtype = "float32"
    c.task.class_weight = 0.0  # the paper's unconditional D; the class-head tests turn it on
    c.model.num_classes = 0
    # at 8x8 a light shape on black is a few pixels; both greys random give each test image
    # (and the overfit targets the thresholds below were set on) contrast over the whole frame
    c.dataset.palette = "random"
    for key, value in overrides.items():
        c[key] = value
    return c


def count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def test_published_parameter_counts():
    """Radford et al. 64x64x3, z=100, 64 features; PyTorch's DCGAN example has the same."""
    model = MODELS.get("dcgan")()
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 100)))["params"]
    k = 4 * 4  # every (transposed) convolution is 4x4, without bias before BatchNorm
    widths = [512, 256, 128, 64]
    g = 100 * 4 * 4 * 512 + 2 * 512  # project + its BatchNorm scale/bias
    g += sum(a * b * k + 2 * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    g += 64 * 3 * k
    d = 3 * 64 * k  # first conv, no BatchNorm
    d += sum(a * b * k + 2 * b for a, b in zip(widths[::-1][:-1], widths[::-1][1:], strict=True))
    d += 512 * 4 * 4  # the 4x4 valid convolution to one logit
    assert count(shapes["generator"]) == g == 3_576_704
    assert count(shapes["discriminator"]) == d == 2_765_568


@pytest.mark.parametrize("name,latent,shape", [("dcgan_28", 100, (28, 28, 1)),
                                               ("dcgan_32", 100, (32, 32, 3)),
                                               ("dcgan_tiny", 4, (8, 8, 1))])
def test_generator_and_discriminator_shapes(name, latent, shape):
    model = MODELS.get(name)()
    z = jnp.zeros((2, latent))
    out = jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), z))[0]
    chex.assert_shape(out, (2,))
    variables = jax.eval_shape(model.init, jax.random.key(0), z)
    images = jax.eval_shape(lambda v: model.apply(v, z, method="generate"), variables)
    chex.assert_shape(images, (2, *shape))


def test_generated_images_in_tanh_range_and_bad_shapes_rejected():
    model = MODELS.get("dcgan_tiny")()
    z = jax.random.normal(jax.random.key(0), (3, 4)) * 10
    variables = jax.jit(model.init)(jax.random.key(1), z)
    images = model.apply(variables, z, method="generate")
    assert float(jnp.max(jnp.abs(images))) <= 1.0
    with pytest.raises(ValueError, match="config.model.latent_dim"):
        model.apply(variables, jnp.zeros((1, 5)), method="generate")
    with pytest.raises(ValueError, match="config.model.image_shape"):
        model.apply(variables, jnp.zeros((1, 16, 16, 1)), method="discriminate")
    with pytest.raises(ValueError, match="config.model.num_stages"):
        MODELS.get("dcgan")(image_shape=(28, 28, 1)).init(jax.random.key(0), jnp.zeros((1, 100)))


def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 16)) * 3

    def np_sigmoid(x):
        return 1 / (1 + np.exp(-x))

    d_ref = -np.log(np_sigmoid(real)) - np.log(1 - np_sigmoid(fake))
    np.testing.assert_allclose(gan.discriminator_loss(jnp.asarray(real), jnp.asarray(fake)),
                               d_ref, rtol=1e-5)
    np.testing.assert_allclose(gan.generator_loss(jnp.asarray(fake)),
                               -np.log(np_sigmoid(fake)), rtol=1e-5)
    # one-sided label smoothing: cross-entropy against 0.9 for real, 0 for fake
    smooth = (-0.9 * np.log(np_sigmoid(real)) - 0.1 * np.log(1 - np_sigmoid(real))
              - np.log(1 - np_sigmoid(fake)))
    np.testing.assert_allclose(gan.discriminator_loss(jnp.asarray(real), jnp.asarray(fake), 0.9),
                               smooth, rtol=1e-5)


def test_spectral_norm_equals_weights_divided_by_their_top_singular_value():
    """norm='spectral': after the power iterations of a few training calls, D's logits equal
    those of a plain D whose kernels (as (fan_in, out) matrices) are divided by numpy's
    largest singular value; evaluation does not advance the iteration."""
    kw = dict(image_shape=(8, 8, 1), features=4, num_stages=2)
    spectral = Discriminator(norm="spectral", **kw)
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, size=(4, 8, 8, 1)), jnp.float32)
    variables = jax.jit(spectral.init)(jax.random.key(0), x)
    # biases (kept without BatchNorm) set away from 0: they are not divided
    variables = {**variables, "params": jax.tree.map(
        lambda p: p if p.ndim > 1 else jnp.full_like(p, 0.3), variables["params"])}
    stats = variables["batch_stats"]
    for _ in range(30):
        _, new = spectral.apply({**variables, "batch_stats": stats}, x, train=True,
                                mutable=["batch_stats"])
        stats = new["batch_stats"]
    trained = {**variables, "batch_stats": stats}
    _, unchanged = spectral.apply(trained, x, train=False, mutable=["batch_stats"])
    chex.assert_trees_all_equal(unchanged["batch_stats"], stats)

    def divided(kernel):
        k = np.asarray(kernel, np.float64)
        if k.ndim == 1:  # a bias
            return k.astype(np.float32)
        return (k / np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0]).astype(
            np.float32)

    plain = Discriminator(norm="none", **kw)
    reference = plain.apply({"params": jax.tree.map(divided, variables["params"])}, x)
    np.testing.assert_allclose(spectral.apply(trained, x), reference, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="config.model.discriminator_norm"):
        Discriminator(norm="layer", **kw).init(jax.random.key(0), x)


@pytest.mark.parametrize("discriminator_norm,discriminator_steps,class_weight",
                         [("batch", 1, 0.0), ("spectral", 1, 0.0), ("batch", 2, 0.0),
                          ("spectral", 1, 1.0)])
def test_one_step_updates_each_network_only_with_its_own_loss(discriminator_norm,
                                                              discriminator_steps, class_weight):
    """The real train step equals: D -= lr * dL_D/dD (discriminator_steps times, fresh noise
    each); then G -= lr * dL_G/dG at the new D (with class_weight, G's loss reads D's class
    head, and still only G moves)."""
    config = tiny_config()
    config.model.discriminator_norm = discriminator_norm
    config.task.discriminator_steps = discriminator_steps
    config.model.num_classes = 4 if class_weight else 0
    config.task.class_weight = class_weight
    config.optimizer = ml_collections.ConfigDict({"name": "sgd", "learning_rate": 0.5,
                                                  "schedule": "constant"})
    config.phase_optimizers = ml_collections.ConfigDict()
    trainer = Trainer(config)
    task = trainer.task
    assert task.phases == ("discriminator", "generator")
    assert task.steps_per_phase == {"discriminator": discriminator_steps, "generator": 1}
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    new_state, metrics = jax.jit(trainer.step_fn())(state, batch)

    rng = jax.random.fold_in(state.rng, state.step)
    params0, mutable0 = state.params, state.mutable
    lr = 0.5

    @functools.partial(jax.jit, static_argnums=0)
    def phase_grad(phase, params, mutable, key):
        def f(sub):
            loss, (_, new_mut) = task.loss(phase, {**params, phase: sub}, mutable, batch, key)
            return loss, new_mut
        return jax.grad(f, has_aux=True)(params[phase])

    params1, mutable1, d_grads = params0, mutable0, []
    for i in range(discriminator_steps):
        g_d, mutable1 = phase_grad("discriminator", params1, mutable1, jax.random.fold_in(rng, i))
        d_grads.append(g_d)
        params1 = {**params1, "discriminator": jax.tree.map(
            lambda p, g: p - lr * g, params1["discriminator"], g_d)}
    d1 = params1["discriminator"]
    g_rng = jax.random.fold_in(rng, discriminator_steps)
    g_g, mutable2 = phase_grad("generator", params1, mutable1, g_rng)
    g1 = jax.tree.map(lambda p, g: p - lr * g, params0["generator"], g_g)
    chex.assert_trees_all_close(new_state.params, {"discriminator": d1, "generator": g1},
                                rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(new_state.mutable, mutable2, rtol=1e-5, atol=1e-6)
    if discriminator_steps > 1:  # the second D update saw a new fake batch and a moved D
        assert float(optax.tree.norm(jax.tree.map(jnp.subtract, *d_grads[:2]))) > 0
        config.task.discriminator_steps = 0
        with pytest.raises(ValueError, match="config.task.discriminator_steps"):
            build_task(config)

    # the generator's loss does depend on D, and D's on G, yet neither moved the other
    def gen_loss_wrt_d(d):
        return task.loss("generator", {**params1, "discriminator": d}, mutable1, batch,
                         g_rng)[0]

    assert float(optax.tree.norm(jax.jit(jax.grad(gen_loss_wrt_d))(d1))) > 0
    assert float(optax.tree.norm(g_d)) > 0 and float(optax.tree.norm(g_g)) > 0
    for key in ("discriminator/loss", "discriminator/d_real_accuracy",
                "discriminator/d_fake_accuracy", "generator/loss", "generator/g_loss"):
        assert key in metrics
    if class_weight:
        for key in ("discriminator/d_class_loss", "discriminator/d_class_accuracy",
                    "generator/g_class_entropy", "generator/g_class_marginal_entropy"):
            assert key in metrics


@pytest.mark.parametrize("discriminator_norm", ["batch", "none"])
def test_r1_penalty_is_half_gamma_times_the_squared_input_gradient(discriminator_norm):
    """r1_gamma = g adds g/2 * mean_i ||d(sum_j D(x_j))/dx_i||^2 to D's loss (one train-mode
    call scores the real batch, so BatchNorm couples the images); the gradient is checked
    against central differences of D over every pixel."""
    config = tiny_config()
    config.model.discriminator_norm = discriminator_norm
    config.batch_size = 2
    batch = first_batch(config)
    key = jax.random.key(7)
    plain = build_task(config)
    config.task.r1_gamma = 2.0
    task = build_task(config)
    variables = jax.jit(plain.init_variables)(jax.random.key(0), batch)
    # kernels ~N(0, 0.4) rather than 0.02, so that the penalty is O(1), not lost in rounding;
    # biases (norm 'none') away from 0, so that they play a part
    params = {**variables["params"], "discriminator": jax.tree.map(
        lambda p: p * 20 if p.ndim > 1 else p + 0.1, variables["params"]["discriminator"])}
    mutable = {"batch_stats": variables["batch_stats"]}
    penalised, (metrics, _) = task.loss("discriminator", params, mutable, batch, key)
    unpenalised, _ = plain.loss("discriminator", params, mutable, batch, key)

    real = np.asarray(gan.to_tanh_range(batch["image"]), np.float32)
    d_vars = {"params": params, "batch_stats": mutable["batch_stats"]}
    summed = jax.jit(jax.vmap(lambda x: jnp.sum(task.model.apply(
        d_vars, x, train=True, method="discriminate", mutable=["batch_stats"])[0])))
    eps = 1e-2
    bumps = np.eye(real.size, dtype=np.float32).reshape(-1, *real.shape) * eps
    numeric = (np.asarray(summed(real + bumps)) - np.asarray(summed(real - bumps))) / (2 * eps)
    grad_sq = np.sum(numeric.reshape(real.shape[0], -1) ** 2, axis=1)
    np.testing.assert_allclose(metrics["r1_grad_sq"], grad_sq.mean(), rtol=2e-3)
    np.testing.assert_allclose(penalised - unpenalised, grad_sq.mean(), rtol=2e-3)
    config.task.r1_gamma = -1.0
    with pytest.raises(ValueError, match="config.task.r1_gamma"):
        build_task(config)


@pytest.mark.parametrize("discriminator_norm,learning_rate", [("batch", 2e-3),
                                                               ("spectral", 5e-3)])
def test_overfits_one_batch(discriminator_norm, learning_rate):
    """Trained by the real step on one image repeated, G collapses onto that image (the
    Lipschitz-bounded spectral D pushes G more gently: 0.42x at 2e-3 after 300 steps)."""
    config = tiny_config()
    config.model.discriminator_norm = discriminator_norm
    config.optimizer.learning_rate = learning_rate
    config.phase_optimizers = ml_collections.ConfigDict()
    config.ema_decay = 0.0  # pictures from the live G, not an average lagging behind
    config.task.real_label = 1.0  # smoothing (0.9) slows the collapse: 0.28x after 300 steps
    trainer = Trainer(config)
    task = trainer.task
    target = np.asarray(trainer.first_batch()["image"])[1:2]
    batch = {"image": jnp.asarray(np.repeat(target, 8, axis=0))}
    state = trainer.init_state(batch)
    step = trainer.train_step()

    def distance(state):  # mean squared pixel error of 64 eval-mode samples to the target
        fake = task.generate_images({"params": state.params, **state.mutable}, 64, seed=3)
        return float(np.mean((fake - target) ** 2))

    initial = distance(state)
    for _ in range(300):
        state, metrics = step(state, batch)
    assert distance(state) < 0.15 * initial, (initial, distance(state))
    assert np.isfinite(float(metrics["discriminator/loss"]))


def test_class_head_overfits_one_labelled_batch():
    """With class_weight, the real step teaches D's class head the labels of one batch."""
    config = tiny_config()
    config.model.num_classes = 4
    config.task.class_weight = 1.0
    config.optimizer.learning_rate = 5e-3
    config.phase_optimizers = ml_collections.ConfigDict()
    trainer = Trainer(config)
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.train_step()
    losses = []
    for _ in range(150):
        state, metrics = step(state, batch)
        losses.append(float(metrics["discriminator/d_class_loss"]))
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    assert float(metrics["discriminator/d_class_accuracy"]) == 1.0


def phase_grad_fn(task, batch):
    """d(phase loss)/d(phase params) and the new mutable collections, jitted per phase."""
    @functools.partial(jax.jit, static_argnums=0)
    def phase_grad(phase, params, mutable, key):
        def f(sub):
            loss, (_, new_mut) = task.loss(phase, {**params, phase: sub}, mutable, batch, key)
            return loss, (loss, new_mut)
        grads, (loss, new_mut) = jax.grad(f, has_aux=True)(params[phase])
        return grads, loss, new_mut

    return phase_grad


def test_k_discriminator_steps_equal_hand_stepped_adam_updates():
    """discriminator_steps = 3 with the config's Adam (beta1 0.5) and a weight average: the
    Trainer's step equals three D updates then one G update done by hand with the same
    optax transformations and keys (D's optimiser state shared by its three updates), then
    one move of the average; compared leaf by leaf."""
    k = 3
    config = tiny_config()
    config.task.discriminator_steps = k
    config.ema_decay = 0.5
    config.optimizer.learning_rate = 1e-2  # visible moves of every weight in one step
    config.phase_optimizers = ml_collections.ConfigDict()
    trainer = Trainer(config)
    task = trainer.task
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    new_state, metrics = jax.jit(trainer.step_fn())(state, batch)

    phase_grad = phase_grad_fn(task, batch)
    rng = jax.random.fold_in(state.rng, state.step)
    params, mutable, opt_state = state.params, state.mutable, dict(state.opt_state)
    losses = {}

    @functools.partial(jax.jit, static_argnums=0)  # one program per phase, not one per op
    def adam_update(phase, grads, opt_state, params):
        updates, opt_state = trainer.txs[phase].update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for i, phase in enumerate(["discriminator"] * k + ["generator"]):
        grads, losses[phase], mutable = phase_grad(phase, params, mutable,
                                                   jax.random.fold_in(rng, i))
        new_params, opt_state[phase] = adam_update(phase, grads, opt_state[phase],
                                                   params[phase])
        params = {**params, phase: new_params}
    average = jax.jit(functools.partial(jax.tree.map, lambda e, p: 0.5 * e + 0.5 * p))
    ema = average(state.ema, params)
    kw = dict(rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(new_state.params, params, **kw)
    chex.assert_trees_all_close(new_state.opt_state, opt_state, **kw)
    chex.assert_trees_all_close(new_state.mutable, mutable, **kw)
    chex.assert_trees_all_close(new_state.ema, ema, **kw)
    counts = {p: {int(x) for x in jax.tree.leaves(new_state.opt_state[p])
                  if jnp.issubdtype(x.dtype, jnp.integer)} for p in task.phases}
    assert counts == {"discriminator": {k}, "generator": {1}}  # Adam's step counts
    # the logged losses are those of each phase's last update
    np.testing.assert_allclose(metrics["discriminator/loss"], losses["discriminator"],
                               rtol=1e-5)
    np.testing.assert_allclose(metrics["generator/loss"], losses["generator"], rtol=1e-5)


def standing_statistics(task, averaged, seed: int):
    """The averaged G's standing BatchNorm statistics by hand: each noise batch's statistics
    recovered from the stock momentum-0.9 update new = 0.9 * old + 0.1 * batch, averaged."""
    per_batch = []
    for i in range(task.standing_batches):
        _, new = task.model.apply(averaged, task.noise(jax.random.key(seed + 3 + i), 256),
                                  train=True, method="generate", mutable=["batch_stats"])
        per_batch.append(jax.tree.map(lambda n, o: (n - 0.9 * o) / 0.1,
                                      new["batch_stats"]["generator"],
                                      averaged["batch_stats"]["generator"]))
    return jax.tree.map(lambda *s: np.mean(s, axis=0), *per_batch)


def eval_context(variables, step: int = 3) -> EvalContext:
    return EvalContext(variables=variables, metrics={}, batch={}, step=step, final=False,
                       workdir="", eval_batches=lambda: [])


def test_ema_decay_trains_the_gan_and_its_pictures_use_the_averaged_generator():
    """config.ema_decay = d: after each step ema <- d * ema + (1 - d) * (new weights), for G
    and D; evaluation hands the average to the evaluators, whose pictures are the averaged
    G's with its standing statistics (not the live G's)."""
    config = tiny_config()
    config.ema_decay = 0.8
    config.task.standing_stats_batches = 3
    trainer = Trainer(config)
    task = trainer.task
    batch = trainer.first_batch()
    state = trainer.init_state(batch)
    step = trainer.train_step(donate=False)  # the test keeps the state before each step
    chex.assert_trees_all_equal(state.ema, state.params)
    expected = state.params
    for _ in range(3):
        state, metrics = step(state, batch)
        expected = jax.tree.map(lambda e, w: 0.8 * e + 0.2 * w, expected, state.params)
        assert np.isfinite(float(metrics["discriminator/loss"]))
        assert np.isfinite(float(metrics["generator/loss"]))
    chex.assert_trees_all_close(state.ema, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(expected["generator"])[0],
                           jax.tree.leaves(state.params["generator"])[0])
    variables = jax.device_get(trainer.eval_variables(state))  # what the loop hands over
    chex.assert_trees_all_equal(variables["params"], jax.device_get(state.ema))

    seed = trainer.config.gan_samples.sample_seed
    n = trainer.config.gan_samples.num_report_images
    averaged = {"params": expected, "batch_stats": state.mutable["batch_stats"]}
    standing = {**averaged, "batch_stats": {**averaged["batch_stats"],
                                            "generator": standing_statistics(task, averaged,
                                                                             seed)}}
    z = task.noise(jax.random.key(seed), n)
    want = (np.asarray(task.model.apply(standing, z, method="generate")) + 1) / 2
    live = (np.asarray(task.model.apply({"params": state.params, **state.mutable}, z,
                                        method="generate")) + 1) / 2
    assert np.abs(want - live).mean() > 1e-3
    [samples] = build_evaluators(trainer.config, task)
    report = samples(eval_context(variables))
    grid = image_grids.make_grid(want, 8).astype(int)
    assert report.images["samples"].shape == grid.shape
    assert np.abs(report.images["samples"].astype(int) - grid).max() <= 1
    np.testing.assert_allclose(task.generate_images(variables, n, seed), want, rtol=1e-4,
                               atol=1e-4)
    # without standing statistics the average draws with the live G's running statistics
    config.task.standing_stats_batches = 0
    plain = (np.asarray(task.model.apply(averaged, z[:4], method="generate")) + 1) / 2
    np.testing.assert_allclose(build_task(config).generate_images(variables, 4, seed), plain,
                               rtol=1e-5, atol=1e-6)
    # with eval_with_ema off, evaluation draws the live G with its own statistics
    config.task.standing_stats_batches = 3
    config.eval_with_ema = False
    live_trainer = Trainer(config)
    assert live_trainer.task.standing_batches == 0
    live_vars = jax.device_get(live_trainer.eval_variables(state))
    chex.assert_trees_all_equal(live_vars["params"], jax.device_get(state.params))
    np.testing.assert_allclose(live_trainer.task.generate_images(live_vars, n, seed), live,
                               rtol=1e-4, atol=1e-4)
    config.eval_with_ema = True
    # with 2 micro-batches per step the average still moves once per step
    config.grad_accum_steps = 2
    trainer2 = Trainer(config)
    state2 = trainer2.init_state(batch)
    step2 = trainer2.train_step(donate=False)
    p0 = state2.params
    state2, _ = step2(state2, batch)
    p1 = state2.params
    state2, _ = step2(state2, batch)
    chex.assert_trees_all_close(
        state2.ema, jax.tree.map(lambda a, b, c: 0.64 * a + 0.16 * b + 0.2 * c, p0, p1,
                                 state2.params), rtol=1e-5, atol=1e-7)
    config.ema_decay = 1.0
    with pytest.raises(ValueError, match="config.ema_decay"):
        build_task(config)
    config.ema_decay = 0.8
    config.task.standing_stats_batches = -1
    with pytest.raises(ValueError, match="config.task.standing_stats_batches"):
        build_task(config)


def test_resume_is_bit_identical(tmp_path):
    """3 steps + restart + 3 steps ends with the same state as 6 uninterrupted steps
    (the weight average included); the gan_samples evaluator draws at each evaluation."""
    def config(steps):
        c = tiny_config(num_train_steps=steps, checkpoint_every_steps=3, eval_every_steps=3,
                        log_every_steps=1, progress="none")
        c.ema_decay = 0.9
        return c

    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train_and_evaluate(config(6), straight)
    train_and_evaluate(config(3), resumed)
    summary = train_and_evaluate(config(6), resumed)
    a, b = restore_raw_state(straight), restore_raw_state(resumed)
    assert int(a["step"]) == int(b["step"]) == 6
    for part in ("params", "mutable", "opt_state", "ema"):
        chex.assert_trees_all_equal(a[part], b[part])
    assert set(a["params"]) == set(a["ema"]) == {"generator", "discriminator"}
    assert "eval/d_real_accuracy" in summary and "eval/g_loss" in summary
    for workdir in (tmp_path / "straight", tmp_path / "resumed"):
        for name in ("samples", "interpolation"):
            assert (workdir / "images" / f"{name}_000003.png").exists()
            assert (workdir / "images" / f"{name}_000006.png").exists()
            assert (workdir / f"{name}.png").exists()


def test_gan_samples_evaluator_and_sample(tmp_path):
    """The sample grid is the fixed noise batch drawn as `generate_images` draws it (8 per
    row), the same at every evaluation; the interpolation has 4 strips of
    interpolation_steps images whose ends are the draws of the end codes."""
    config = tiny_config()
    config.gan_samples = ml_collections.ConfigDict({"num_report_images": 12,
                                                    "interpolation_steps": 5})
    trainer = Trainer(config)
    task = trainer.task
    batch = trainer.first_batch()
    variables = jax.device_get(trainer.init_variables(batch))
    [evaluator] = trainer.evaluators()
    assert evaluator.name == "gan_samples" and evaluator.due(1000, final=False)
    report = evaluator(eval_context(variables, step=7))
    assert set(report.images) == {"samples", "interpolation"}
    want = image_grids.make_grid(task.generate_images(variables, 12, 1234), 8)
    assert report.images["samples"].shape == want.shape
    assert np.abs(report.images["samples"].astype(int) - want.astype(int)).max() <= 1
    picture_vars = task.picture_variables(variables, 1234)
    ends = task.draw(picture_vars, task.noise(jax.random.key(1235), 8))
    strips = image_grids.make_grid(np.stack([ends[0], *np.zeros((3, *ends.shape[1:])),
                                             ends[1]]), 5)
    interpolation = report.images["interpolation"]
    assert interpolation.shape == (4 * (strips.shape[0] - 1) + 1, *strips.shape[1:])
    cell = strips.shape[1] // 5
    first_row = interpolation[:strips.shape[0]]
    for col in (0, 4):  # the strip's ends are the end codes' images
        cols = slice(col * cell, (col + 1) * cell + 1)
        assert np.abs(first_row[:, cols].astype(int) - strips[:, cols].astype(int)).max() <= 1
    write_report(report, 7, False, str(tmp_path), None)
    assert (tmp_path / "images" / "samples_000007.png").exists()
    # the fixed noise batch gives the same grid every time
    again = evaluator(eval_context(variables, step=8))
    np.testing.assert_array_equal(report.images["samples"], again.images["samples"])
    out = tmp_path / "s.png"
    samples = task.sample(variables, ml_collections.ConfigDict(
        {**task.config.sample.to_dict(), "num_samples": 5, "output": str(out)}), str(tmp_path))
    chex.assert_shape(samples, (5, 8, 8, 1))
    assert out.exists() and samples.min() >= 0.0 and samples.max() <= 1.0


def test_frechet_scores_the_gan_through_the_loop(tmp_path):
    """Listed in config.evaluators, the Fréchet distance of the averaged G's samples ends in
    the run's summary beside its real-vs-real floor; the classifier is saved in the workdir."""
    config = tiny_config(num_train_steps=2, eval_every_steps=2, checkpoint_every_steps=2,
                         progress="none")
    config.evaluators = ("gan_samples", "frechet")
    config.frechet = frechet_section(num_classes=4, smoke=True)
    config.frechet.classifier_steps = 5
    summary = train_and_evaluate(config, str(tmp_path))
    assert summary["eval/frechet_distance"] > summary["eval/frechet_real_floor"] > 0
    assert 0 <= summary["eval/frechet_classifier_accuracy"] <= 1
    assert (tmp_path / "frechet_classifier.npz").exists() and (tmp_path / "samples.png").exists()


def np_softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_class_entropies_match_numpy():
    logits = np.random.default_rng(1).normal(size=(16, 5)) * 3
    p = np_softmax(logits)
    mean_p = p.mean(axis=0)
    conditional, marginal = gan.class_entropies(jnp.asarray(logits, jnp.float32))
    np.testing.assert_allclose(conditional, np.mean(-np.sum(p * np.log(p), axis=1)), rtol=1e-5)
    np.testing.assert_allclose(marginal, -np.sum(mean_p * np.log(mean_p)), rtol=1e-5)
    # the extremes: one-hot rows over all classes, and a whole batch on one class
    onehot = jnp.asarray(np.eye(4) * 50, jnp.float32)
    np.testing.assert_allclose(gan.class_entropies(onehot), (0.0, np.log(4)), atol=1e-5)
    np.testing.assert_allclose(gan.class_entropies(onehot[:1].repeat(4, 0)), (0.0, 0.0),
                               atol=1e-5)


def test_class_weight_adds_d_class_loss_and_g_class_confidence():
    """class_weight = w: D's loss gains w * CE(class head on the real batch, labels), the head
    being a Dense layer on D's last features; G's loss gains w * (mean entropy - entropy of
    the mean) of the head on the fake batch. Checked against numpy at the model's own values."""
    config = tiny_config()
    config.model.discriminator_norm = "none"  # the head is a plain Dense: checkable in numpy
    config.model.num_classes = 4
    plain = build_task(config)
    config.task.class_weight = 0.7
    task = build_task(config)
    batch = first_batch(config, task)
    variables = jax.jit(task.init_variables)(jax.random.key(0), batch)
    params = {**variables["params"], "discriminator": jax.tree.map(
        lambda p: p * 20 if p.ndim > 1 else p + 0.1, variables["params"]["discriminator"])}
    mutable = {"batch_stats": variables["batch_stats"]}
    key = jax.random.key(3)

    d_loss, (d_metrics, _) = task.loss("discriminator", params, mutable, batch, key)
    d_plain, _ = plain.loss("discriminator", params, mutable, batch, key)
    real = gan.to_tanh_range(batch["image"])
    (_, classes), state = task.model.apply(
        {"params": params, **mutable}, real, train=True, with_classes=True,
        method="discriminate", mutable=["batch_stats", "intermediates"])
    features = np.asarray(state["intermediates"]["discriminator"]["features"][0])
    head = jax.tree.map(np.asarray, params["discriminator"]["classify"])
    np.testing.assert_allclose(classes, features.reshape(len(features), -1) @ head["kernel"]
                               + head["bias"], rtol=1e-4, atol=1e-5)
    labels = np.asarray(batch["label"])
    ce = -np.log(np_softmax(np.asarray(classes, np.float64))[np.arange(len(labels)), labels])
    np.testing.assert_allclose(d_metrics["d_class_loss"], ce.mean(), rtol=1e-5)
    np.testing.assert_allclose(d_loss - d_plain, 0.7 * ce.mean(), rtol=1e-4)
    np.testing.assert_allclose(d_metrics["d_class_accuracy"],
                               np.mean(np.argmax(classes, -1) == labels))

    g_loss, (g_metrics, _) = task.loss("generator", params, mutable, batch, key)
    g_plain, _ = plain.loss("generator", params, mutable, batch, key)
    np.testing.assert_allclose(g_loss - g_plain, 0.7 * (g_metrics["g_class_entropy"]
                                                        - g_metrics["g_class_marginal_entropy"]),
                               rtol=1e-4, atol=1e-6)
    assert 0 < float(g_metrics["g_class_entropy"]) <= np.log(4) + 1e-6

    # the eval metrics report the head's accuracy on the eval images
    totals = task.eval_metrics({"params": params, **mutable}, batch)
    eval_classes = task.model.apply({"params": params, **mutable}, real, with_classes=True,
                                    method="discriminate")[1]
    total, n = totals["d_class_accuracy"]
    np.testing.assert_allclose(total / n, np.mean(np.argmax(eval_classes, -1) == labels))

    with pytest.raises(ValueError, match="'label'"):
        task.loss("discriminator", params, mutable, {"image": batch["image"]}, key)
    headless = Discriminator(image_shape=(8, 8, 1), features=4, num_stages=2, norm="none")
    with pytest.raises(ValueError, match="config.model.num_classes"):
        headless.init(jax.random.key(0), real, with_classes=True)
    config.task.class_weight = -1.0
    with pytest.raises(ValueError, match="config.task.class_weight"):
        build_task(config)
    config.task.class_weight, config.model.num_classes = 1.0, 0
    with pytest.raises(ValueError, match="config.model.num_classes"):
        build_task(config)


def test_gan_task_needs_a_gan_model():
    config = tiny_config()
    config.model = ml_collections.ConfigDict({"name": "dense_ae_tiny"})
    with pytest.raises(ValueError, match="config.model.name"):
        build_task(config)
    config = tiny_config()
    config.task.real_label = 0.3
    with pytest.raises(ValueError, match="config.task.real_label"):
        build_task(config)


@pytest.mark.parametrize("path", ["configs/dcgan_shapes.py", "configs/dcgan_mnist.py",
                                  "configs/dcgan_cifar10.py"])
def test_config_builds_on_its_data(path):
    """Each smoke config's GAN takes its dataset's batches (TFDS through mock data)."""
    import tensorflow_datasets as tfds

    config = load_config(f"{path}:smoke")
    task = build_task(config)
    with tfds.testing.mock_data(num_examples=40):
        batch = first_batch(config, task)
    variables = jax.eval_shape(task.init_variables, jax.random.key(0), batch)
    params = variables.pop("params")
    for phase in task.phases:
        loss, _ = jax.eval_shape(lambda p, v, ph=phase: task.loss(ph, p, v, batch,
                                                                  jax.random.key(1)),
                                 params, variables)
        assert loss.shape == ()
