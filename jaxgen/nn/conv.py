"""`flax.linen.Conv` with 1x1 convolutions computed as matmuls on XLA's CPU backend.

XLA's CPU backend runs a 1x1 convolution, and far worse its two gradients, as convolutions
(the kernel gradient as a 14x14-window convolution with its operands transposed around it);
the same contraction as a dot runs 1.8-2.7x faster per layer and takes a Glow step from 92 to
138 img/s on one core (experiments/README.md). Other convolutions, and other backends, are
`lax.conv_general_dilated` unchanged.
"""
from collections.abc import Callable

import flax.linen as nn
import jax
from jax import lax

Array = jax.Array


def conv_general_dilated(lhs: Array, rhs: Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         precision=None) -> Array:
    """`lax.conv_general_dilated`, as a matmul for an NHWC x HWIO 1x1 convolution on CPU with
    unit strides, no padding, no dilation and no groups."""
    pointwise = (jax.default_backend() == "cpu" and lhs.ndim == 4 and rhs.shape[:2] == (1, 1)
                 and feature_group_count == 1 and tuple(window_strides) == (1, 1)
                 and all(d == 1 for d in (lhs_dilation or (1, 1)) + (rhs_dilation or (1, 1)))
                 and (padding == "SAME" or padding == "VALID" or
                      all(tuple(p) == (0, 0) for p in padding))
                 and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
                 == lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")))
    if pointwise:
        return lax.dot_general(lhs, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision)


class Conv(nn.Conv):
    """`flax.linen.Conv` (same parameters and names) computed by `conv_general_dilated` above."""

    conv_general_dilated: Callable | None = conv_general_dilated
