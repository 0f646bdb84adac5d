"""`resize_nearest`: jax.image.resize's nearest upsampling, with a sum for its gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl_arch.models.layers.resize import resize_nearest


def _image_resize(x, height, width):
    return jax.image.resize(x, (x.shape[0], height, width, x.shape[3]), "nearest")


@pytest.mark.parametrize("shape, size", [((2, 4, 5, 3), (8, 10)), ((1, 3, 2, 2), (9, 4)),
                                         ((2, 4, 4, 1), (4, 8)), ((2, 4, 3, 2), (7, 5))])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_equals_image_resize_and_its_gradient_is_each_blocks_sum(shape, size, dtype):
    x = jax.random.normal(jax.random.key(0), shape, dtype)
    out = resize_nearest(x, *size)
    np.testing.assert_array_equal(np.asarray(out, np.float32),
                                  np.asarray(_image_resize(x, *size), np.float32))
    g = jax.random.normal(jax.random.key(1), out.shape, dtype)
    grad = jax.grad(lambda x: jnp.sum((resize_nearest(x, *size) * g).astype(jnp.float32)))(x)
    ref = jax.grad(lambda x: jnp.sum((_image_resize(x, *size) * g).astype(jnp.float32)))(x)
    if size[0] % shape[1] or size[1] % shape[2]:  # not a whole factor: the resize itself
        np.testing.assert_array_equal(np.asarray(grad, np.float32), np.asarray(ref, np.float32))
        return
    fh, fw = size[0] // shape[1], size[1] // shape[2]
    g64 = np.asarray(g, np.float64).reshape(shape[0], shape[1], fh, shape[2], fw, shape[3])
    blocks = g64.sum(axis=(2, 4))  # numpy: each input pixel's gradient, its block's sum
    tol = 1e-6 if dtype == jnp.float32 else 1e-2
    np.testing.assert_allclose(np.asarray(grad, np.float64), blocks, rtol=tol, atol=tol)
    np.testing.assert_allclose(np.asarray(grad, np.float32), np.asarray(ref, np.float32),
                               rtol=tol, atol=tol)


def test_bfloat16_gradient_has_no_scatter():
    x = jnp.ones((2, 4, 4, 8), jnp.bfloat16)
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(resize_nearest(x, 8, 8).astype(
        jnp.float32))))(x)
    assert "scatter" not in str(jaxpr)
    old = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(_image_resize(x, 8, 8).astype(
        jnp.float32))))(x)
    assert "scatter" in str(old)  # what it replaces
