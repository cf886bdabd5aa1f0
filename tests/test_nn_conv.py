"""jaxgen.nn.conv: flax.linen.Conv and ConvTranspose's parameters and results (gradients
included), 1x1 convolutions as matmuls, transposed ones without input dilation, and the
canonical convolutions whose gradients keep their layout."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.nn.conv import Conv, ConvTranspose, canonical_conv, strided_conv, transposed_conv


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


def lax_conv(x, kernel, strides=(1, 1), padding="VALID", lhs_dilation=None):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, lhs_dilation,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("ours, ref", [
    (lambda x, k: canonical_conv(x, k, ((1, 1), (2, 0))),
     lambda x, k: lax_conv(x, k, padding=((1, 1), (2, 0)))),
    (lambda x, k: strided_conv(x, k, 2), lambda x, k: lax_conv(x, k, (2, 2))),
    (lambda x, k: transposed_conv(x, k, 2, ((2, 2), (1, 2))),
     lambda x, k: lax_conv(x, k, padding=((2, 2), (1, 2)), lhs_dilation=(2, 2))),
])
def test_canonical_convs_match_lax_to_the_second_derivative(ours, ref):
    """Their first and second derivatives (an R1 penalty's gradient) are canonical_conv's own."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))

    def penalty(conv, k):  # the squared input gradient of a score, by the kernel
        return jnp.sum(jax.grad(lambda v: jnp.sum(jnp.sin(conv(v, k))))(x) ** 2)

    np.testing.assert_allclose(ours(x, kernel), ref(x, kernel), rtol=1e-5, atol=1e-5)
    for conv in (ours, ref):
        assert conv(x, kernel).shape == ref(x, kernel).shape
    np.testing.assert_allclose(jax.grad(penalty, 1)(ours, kernel),
                               jax.grad(penalty, 1)(ref, kernel), rtol=1e-4, atol=1e-4)


def test_a_canonical_convs_gradients_are_laid_out_as_the_convolution_itself():
    x, kernel = jnp.ones((2, 5, 5, 3)), jnp.ones((3, 3, 3, 4))

    def layouts(conv):  # the dimension numbers of every convolution of the gradients
        grads = jax.grad(lambda x, k: jnp.sum(conv(x, k)), (0, 1))
        return [line.split("dim_numbers = ")[1].split(", window")[0]
                for line in jax.jit(grads).lower(x, kernel).as_text().splitlines()
                if "stablehlo.convolution" in line]

    assert layouts(lambda x, k: canonical_conv(x, k, ((1, 1), (1, 1)))) == \
        ["[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]"] * 2  # the input and kernel gradients
    assert len(set(layouts(lambda x, k: lax_conv(x, k, padding="SAME")))) > 1
