"""The model programs' XLA options on CPU: convolutions leave YNNPACK, the results stay the same."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dl_arch.train import compile_options
from dl_arch.train.compile_options import MODEL_CPU_OPTIONS, YNN_OPTION, model_compiler_options, model_jit


def _conv_gradients(jit=jax.jit):
    """A program of convolutions alone: the input and kernel gradients of a 3x3 layer."""
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 32))
    w = jax.random.normal(jax.random.key(1), (3, 3, 32, 32)) * 0.1
    ct = jax.random.normal(jax.random.key(2), (4, 16, 16, 32))

    def grads(x, w, ct):
        conv = lambda x, w: lax.conv_general_dilated(  # noqa: E731
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.vjp(conv, x, w)[1](ct)

    return jit(grads).lower(x, w, ct), (x, w, ct)


def test_model_programs_take_convolutions_off_ynnpack():
    options = model_compiler_options()
    if options is None:  # only a jaxlib that refuses the option goes without it
        with pytest.raises(jax.errors.JaxRuntimeError):
            jax.jit(lambda x: x + 1).lower(0.0).compile(compiler_options=MODEL_CPU_OPTIONS)
        return
    assert YNN_OPTION in options
    lowered, args = _conv_gradients()
    default, ours = lowered.compile(), _conv_gradients(model_jit)[0].compile()
    assert "ynn_fusion" in default.as_text()  # YNNPACK took the convolutions by default
    assert "ynn_fusion" not in ours.as_text()
    for a, b in zip(default(*args), ours(*args), strict=True):  # float32 sums of ~1,000 terms
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())


def test_extra_options_go_over_the_model_options():
    options = model_compiler_options({"xla_backend_optimization_level": 1, YNN_OPTION: ""})
    assert options == {"xla_backend_optimization_level": 1, YNN_OPTION: ""}
    f = model_jit(lambda x: jnp.sum(x * 2), compiler_options=options)
    assert float(f(jnp.ones(3))) == 6.0


def test_no_model_options_where_xla_flags_set_it_or_off_cpu(monkeypatch):
    compile_options._model_options.cache_clear()
    try:
        monkeypatch.setenv("XLA_FLAGS", f"--{YNN_OPTION}=")
        assert model_compiler_options() is None
        compile_options._model_options.cache_clear()
        monkeypatch.delenv("XLA_FLAGS")
        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
        assert model_compiler_options() is None
        assert compile_options.run_once_compiler_options() is None
    finally:
        compile_options._model_options.cache_clear()
