"""jaxgen.nn.conv.Conv: flax.linen.Conv's parameters and results, 1x1 convolutions as matmuls."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nn.conv import Conv


@pytest.mark.parametrize("kernel,padding", [((1, 1), "SAME"), ((1, 1), "VALID"),
                                            ((3, 3), "SAME"), ((2, 3), ((1, 0), (2, 0)))])
def test_conv_matches_flax_with_gradients(kernel, padding):
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    ours, ref = Conv(4, kernel, padding=padding), nn.Conv(4, kernel, padding=padding)
    params = ref.init(jax.random.key(1), x)
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(params)

    def loss(module, p, x):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    for a, b in zip(jax.tree.leaves(jax.grad(loss, (1, 2))(ours, params, x)),
                    jax.tree.leaves(jax.grad(loss, (1, 2))(ref, params, x))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)


def test_pointwise_conv_is_a_matmul_and_others_stay_convolutions():
    x = jnp.zeros((2, 4, 4, 3))

    def primitives(module):
        params = module.init(jax.random.key(0), x)
        return {e.primitive.name for e in jax.make_jaxpr(module.apply)(params, x).eqns}

    assert "conv_general_dilated" not in primitives(Conv(5, (1, 1)))
    assert "dot_general" in primitives(Conv(5, (1, 1)))
    assert "conv_general_dilated" in primitives(Conv(5, (1, 1), strides=(2, 2)))
    assert "conv_general_dilated" in primitives(Conv(5, (3, 3)))
