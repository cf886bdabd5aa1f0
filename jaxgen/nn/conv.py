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

XLA's CPU backend also lays a convolution's gradients out for its fast path only in a program's
entry computation: inside `lax.cond` (the adversarial core's lazy regularisers) the kernel
gradient of a 3x3 convolution ran 75x slower than outside it, its input gradient 3x.
`canonical_conv` is a convolution whose gradients, to any order, are again convolutions in that
layout (reverse mode only); `strided_conv` and `transposed_conv` build strided and transposed
convolutions from it.
"""
from collections.abc import Callable, Sequence
from functools import partial

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


def _valid_conv(x: Array, kernel: Array) -> Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=NHWC)


def dilated_input_conv(x: Array, kernel: Array, strides: Sequence[int],
                       pads: Sequence[tuple[int, int]],
                       conv: Callable[[Array, Array], Array] = _valid_conv) -> Array:
    """`lax.conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=strides)` for NHWC x HWIO
    (a transposed convolution), computed phase by phase as stride-1 VALID convolutions `conv`."""
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
            row.append(conv(xp, sub))
        phases.append(jnp.stack(row, axis=3))  # [B, out_h, out_w, s_w, O]
    y = jnp.stack(phases, axis=2)  # [B, out_h, s_h, out_w, s_w, O]
    y = y.reshape(x.shape[0], out[0] * s_h, out[1] * s_w, kernel.shape[-1])
    return y[:, :size[0], :size[1]]


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _canonical(x: Array, kernel: Array, pads: tuple[tuple[int, int], ...]) -> Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=NHWC)


def _canonical_fwd(x, kernel, pads):
    return _canonical(x, kernel, pads), (x, kernel)


def _canonical_bwd(pads, residuals, dy):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    # dx: dy convolved with the kernel flipped, its in and out swapped.
    flipped = jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))
    dx = _canonical(dy, flipped, ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]),
                                  (kw - 1 - pads[1][0], kw - 1 - pads[1][1])))
    # dkernel: the input, its channels as the batch and the batch as channels, convolved with
    # dy as a kernel [H', W', B, O] -> [I, kh, kw, O].
    dk = _canonical(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)), pads)
    return dx, jnp.transpose(dk, (1, 2, 0, 3))


_canonical.defvjp(_canonical_fwd, _canonical_bwd)


def canonical_conv(x: Array, kernel: Array, pads: Sequence[tuple[int, int]]) -> Array:
    """A stride-1 convolution, NHWC x HWIO, padded by `pads` ((low, high) per image axis). On CPU,
    its gradients are computed as such convolutions too (see above: fast inside lax.cond as
    well), which leaves it without forward-mode derivatives there."""
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if jax.default_backend() != "cpu":
        return lax.conv_general_dilated(x, kernel, (1, 1), pads, dimension_numbers=NHWC)
    return _canonical(x, kernel, pads)


def strided_conv(x: Array, kernel: Array, stride: int) -> Array:
    """A VALID convolution of stride `stride`, NHWC x HWIO; on CPU, the sum over input phases
    (rows and columns a mod stride) of `canonical_conv`s by the kernel taps that meet them."""
    if jax.default_backend() != "cpu":
        return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                        dimension_numbers=NHWC)
    k, n = kernel.shape[:2], x.shape[1:3]
    out = [(size - taps) // stride + 1 for size, taps in zip(n, k)]
    y = 0.0
    for a in range(min(stride, k[0])):
        for b in range(min(stride, k[1])):
            part = canonical_conv(x[:, a::stride, b::stride], kernel[a::stride, b::stride],
                                  ((0, 0), (0, 0)))
            y = y + part[:, :out[0], :out[1]]
    return y


def transposed_conv(x: Array, kernel: Array, stride: int,
                    pads: Sequence[tuple[int, int]]) -> Array:
    """`lax.conv_general_dilated(x, kernel, (1, 1), pads, lhs_dilation=(stride, stride))`,
    NHWC x HWIO; on CPU, `dilated_input_conv` of `canonical_conv`s."""
    if jax.default_backend() != "cpu":
        return lax.conv_general_dilated(x, kernel, (1, 1), pads, (stride, stride),
                                        dimension_numbers=NHWC)
    return dilated_input_conv(x, kernel, (stride, stride), pads,
                              lambda v, k: canonical_conv(v, k, ((0, 0), (0, 0))))


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
