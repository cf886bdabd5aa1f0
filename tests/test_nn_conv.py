"""jaxgen.nn.conv: flax.linen.Conv and ConvTranspose's parameters and results (gradients
included), 1x1 convolutions as matmuls, transposed ones without input dilation."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nn.conv import Conv, ConvTranspose


CASES = [(Conv, nn.Conv, (1, 1), (1, 1), "SAME"), (Conv, nn.Conv, (1, 1), (1, 1), "VALID"),
         (Conv, nn.Conv, (3, 3), (1, 1), "SAME"), (Conv, nn.Conv, (2, 3), (1, 1), ((1, 0), (2, 0))),
         (ConvTranspose, nn.ConvTranspose, (4, 4), (2, 2), "SAME"),
         (ConvTranspose, nn.ConvTranspose, (2, 2), (2, 2), "VALID"),
         (ConvTranspose, nn.ConvTranspose, (5, 3), (3, 2), ((1, 2), (0, 3)))]


@pytest.mark.parametrize("ours,ref,kernel,strides,padding", CASES)
def test_layers_match_flax_with_gradients(ours, ref, kernel, strides, padding):
    x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
    ours, ref = ours(4, kernel, strides, padding=padding), ref(4, kernel, strides, padding=padding)
    params = ref.init(jax.random.key(1), x)
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(params)

    def loss(module, p, x):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    for a, b in zip(jax.tree.leaves(jax.grad(loss, (1, 2))(ours, params, x)),
                    jax.tree.leaves(jax.grad(loss, (1, 2))(ref, params, x))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)


def test_pointwise_conv_is_a_matmul_and_transposed_ones_dilate_nothing():
    x = jnp.zeros((2, 4, 4, 3))

    def convs(module):
        params = module.init(jax.random.key(0), x)
        eqns = jax.make_jaxpr(module.apply)(params, x).eqns
        return [e.params["lhs_dilation"] for e in eqns if e.primitive.name == "conv_general_dilated"]

    assert convs(Conv(5, (1, 1))) == []
    assert convs(Conv(5, (1, 1), strides=(2, 2))) == [(1, 1)]
    assert convs(Conv(5, (3, 3))) == [(1, 1)]
    assert convs(ConvTranspose(5, (4, 4), (2, 2))) == [(1, 1)] * 4
