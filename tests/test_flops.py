"""The jaxpr FLOP count (`dl_arch.train.flops`) against hand counts, XLA's CPU cost analysis
and a second formulation of the same program (a scan against its unrolled loop)."""

import jax
import jax.numpy as jnp
import pytest

from dl_arch.train.flops import jaxpr_flops, step_flops


def _xla_flops(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    return float((cost[0] if isinstance(cost, list) else cost)["flops"])


def _conv(stride: int, groups: int):
    def conv(x, k):
        return jax.lax.conv_general_dilated(x, k, (stride, stride), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            feature_group_count=groups)
    return conv


def test_matmul_is_two_flops_a_multiply_add_as_xla_counts_it():
    a, b = jnp.ones((32, 64)), jnp.ones((64, 48))
    batched = jnp.ones((3, 32, 64)), jnp.ones((3, 64, 48))
    assert step_flops(jnp.matmul, a, b) == 2 * 32 * 64 * 48 == _xla_flops(jnp.matmul, a, b)
    assert step_flops(jnp.matmul, *batched) == 3 * 2 * 32 * 64 * 48


@pytest.mark.parametrize("stride,groups,cin,cout", [(1, 1, 8, 12), (2, 1, 8, 12), (2, 8, 8, 8),
                                                    (1, 2, 8, 6)])
def test_convolution_counts_every_output_times_its_window(stride, groups, cin, cout):
    """Plain, strided, depthwise and grouped: 2 x outputs x (window x input features per
    group), padding positions included (XLA's CPU count leaves those out, so it is lower)."""
    x, k = jnp.ones((4, 16, 16, cin)), jnp.ones((3, 3, cin // groups, cout))
    side = 16 // stride
    expected = 2 * 4 * side * side * cout * 9 * (cin // groups)
    conv = _conv(stride, groups)
    assert step_flops(conv, x, k) == expected
    assert 0.8 * expected < _xla_flops(conv, x, k) <= expected


@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 1), (2, 8)])
def test_a_convolutions_two_gradients_cost_what_it_does(stride, groups):
    """The input and kernel gradients of a convolution each do as many multiply-adds as it
    does, the strided ones' dilated inputs counted without their inserted zeros."""
    x, k = jnp.ones((4, 16, 16, 8)), jnp.ones((3, 3, 8 // groups, 8))
    conv = _conv(stride, groups)
    grads = jax.grad(lambda x, k: jnp.sum(conv(x, k)), argnums=(0, 1))
    assert step_flops(grads, x, k) == 3 * step_flops(conv, x, k)  # forward + two gradients


def test_scan_counts_its_body_once_per_step_as_the_unrolled_loop_does():
    w = jnp.ones((16, 16))

    def scanned(w):
        return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), w, None, length=5)[0]

    def unrolled(w):
        h = w
        for _ in range(5):
            h = jnp.tanh(h @ w)
        return h

    assert step_flops(scanned, w) == step_flops(unrolled, w) == 5 * 2 * 16 ** 3
    assert step_flops(jax.grad(lambda w: scanned(w).sum()), w) == \
        step_flops(jax.grad(lambda w: unrolled(w).sum()), w)


def test_cond_counts_its_costliest_branch_and_calls_are_entered():
    a = jnp.ones((8, 8))

    def fn(p, a):
        return jax.lax.cond(p, lambda: a @ a @ a, lambda: a @ a)

    assert step_flops(fn, True, a) == 2 * 2 * 8 ** 3
    nested = jax.jit(jax.checkpoint(lambda a: jax.nn.relu(a) @ a))
    assert step_flops(lambda a: nested(a) + 1, a) == 2 * 8 ** 3
    assert jaxpr_flops(jax.make_jaxpr(lambda a: a + 1)(a)) == 0


def test_step_cost_probe_grows_linearly_with_an_rnns_sequence_length(tmp_path):
    """The sequence-length study's probe: XLA's cost analysis counted a scan's body once, so
    an LSTM's FLOPs looked flat in T; the jaxpr count adds the same amount per time step."""
    import json

    from dl_arch.experiments.probes import run_probes
    from dl_arch.testing import load_config

    flops = []
    for t in (10, 20, 30):
        config = load_config(f"configs/lstm_adding.py:T={t}")
        config.batch_size = 4
        run_probes(["step_cost"], config, str(tmp_path))
        flops.append(json.loads((tmp_path / "probes.json").read_text())["step_flops"])
    assert flops[0] > 0 and flops[1] - flops[0] == flops[2] - flops[1] > 0
