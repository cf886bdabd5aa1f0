"""Convolutions laid out for XLA's CPU backend: drop-ins for `flax.linen.Conv` and
`flax.linen.ConvTranspose` (same parameters, names and results to float rounding).

Two shapes of convolution are slow on XLA's CPU backend (experiments/README.md):
- a 1x1 convolution, and far worse its gradients (the kernel gradient becomes a convolution
  with a window the size of the image). As a matmul the same contraction runs 1.8-2.7x faster
  per layer and takes a Glow step from 92 to 138 img/s on one core.
- a transposed (input-dilated) convolution, whose kernel gradient becomes a kernel-dilated
  convolution: three quarters of a DCGAN step. A stride-s transposed convolution is s x s
  stride-1 convolutions of the undilated input by sub-kernels, one per output phase,
  interleaved; those and their gradients run at ordinary convolution speed.
Everything else, and every other backend, is `lax.conv_general_dilated` unchanged.
"""
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
NHWC = ("NHWC", "HWIO", "NHWC")


def _phase(n: int, k: int, s: int, pads: tuple[int, int], r: int, out: int):
    """For output positions o = s * m + r (m < out) of a stride-s input-dilated convolution
    along one axis: the kernel taps that reach an input (k_r, k_r + s, ...) and the input
    padding (lo, hi) after which the sub-kernel runs as a stride-1 VALID convolution."""
    first = next((j for j in range(k) if (r + j - pads[0]) % s == 0), None)
    if first is None:
        return None
    taps = list(range(first, k, s))
    lo = -((r + first - pads[0]) // s)
    return taps, (lo, out + len(taps) - 1 - n - lo)


def dilated_input_conv(x: Array, kernel: Array, strides: Sequence[int],
                       pads: Sequence[tuple[int, int]]) -> Array:
    """`lax.conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=strides)` for NHWC x HWIO
    (a transposed convolution), computed phase by phase as stride-1 convolutions."""
    (n_h, n_w), (k_h, k_w), (s_h, s_w) = x.shape[1:3], kernel.shape[:2], strides
    size = [(n - 1) * s + 1 + p[0] + p[1] - k + 1
            for n, s, p, k in zip((n_h, n_w), strides, pads, (k_h, k_w))]
    out = [-(-length // s) for length, s in zip(size, strides)]
    phases = []
    for r_h in range(s_h):
        row = []
        for r_w in range(s_w):
            ph = _phase(n_h, k_h, s_h, pads[0], r_h, out[0])
            pw = _phase(n_w, k_w, s_w, pads[1], r_w, out[1])
            if ph is None or pw is None:
                row.append(jnp.zeros((x.shape[0], *out, kernel.shape[-1]), x.dtype))
                continue
            xp = lax.pad(x, jnp.zeros((), x.dtype),
                         ((0, 0, 0), (*ph[1], 0), (*pw[1], 0), (0, 0, 0)))
            sub = kernel[jnp.array(ph[0])][:, jnp.array(pw[0])]
            row.append(lax.conv_general_dilated(xp, sub, (1, 1), "VALID",
                                                dimension_numbers=NHWC))
        phases.append(jnp.stack(row, axis=3))  # [B, out_h, out_w, s_w, O]
    y = jnp.stack(phases, axis=2)  # [B, out_h, s_h, out_w, s_w, O]
    y = y.reshape(x.shape[0], out[0] * s_h, out[1] * s_w, kernel.shape[-1])
    return y[:, :size[0], :size[1]]


def conv_general_dilated(lhs: Array, rhs: Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         precision=None) -> Array:
    """`lax.conv_general_dilated`; on CPU, for NHWC x HWIO without kernel dilation or groups,
    a 1x1 convolution (unit strides, no padding) is a matmul and an input-dilated one goes
    phase by phase (`dilated_input_conv`)."""
    lhs_dilation = tuple(lhs_dilation or (1, 1))
    plain = (jax.default_backend() == "cpu" and lhs.ndim == 4 and feature_group_count == 1
             and tuple(rhs_dilation or (1, 1)) == (1, 1) and tuple(window_strides) == (1, 1)
             and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
             == lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC))
    if plain and lhs_dilation != (1, 1) and not isinstance(padding, str):
        return dilated_input_conv(lhs, rhs, lhs_dilation, padding)
    if plain and lhs_dilation == (1, 1) and rhs.shape[:2] == (1, 1) and (
            isinstance(padding, str) or all(tuple(p) == (0, 0) for p in padding)):
        return lax.dot_general(lhs, rhs[0, 0], (((3,), (0,)), ((), ())), precision=precision)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision)


class Conv(nn.Conv):
    """`flax.linen.Conv` (same parameters and names) computed by `conv_general_dilated` above."""

    conv_general_dilated: Callable | None = conv_general_dilated


def _transpose_pads(k: int, s: int, padding: str) -> tuple[int, int]:
    """The input padding of `lax.conv_transpose` for 'SAME' or 'VALID' along one axis."""
    if padding == "SAME":
        total = k + s - 2
        before = k - 1 if s > k - 1 else -(-total // 2)
    else:
        total = k + s - 2 + max(k - s, 0)
        before = k - 1
    return before, total - before


class ConvTranspose(nn.Module):
    """`flax.linen.ConvTranspose` (same parameters, names and results; no kernel transpose,
    dilation or masks) through `conv_general_dilated` above. padding: 'SAME', 'VALID' or
    explicit (low, high) pairs of the dilated input, as in `lax.conv_transpose`."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init,
                            (*self.kernel_size, x.shape[-1], self.features))
        pads = [_transpose_pads(k, s, self.padding) for k, s in
                zip(self.kernel_size, self.strides)] if isinstance(self.padding, str) \
            else self.padding
        y = conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=self.strides,
                                 dimension_numbers=NHWC)
        return y + self.param("bias", self.bias_init, (self.features,))
