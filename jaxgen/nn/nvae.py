"""NVAE's layers (Vahdat & Kautz 2020): the residual cells, the hierarchical net and the
spectral regulariser's power iteration.

NVAENet is a bottom-up encoder and a top-down decoder over groups of latents at several scales,
coarse first. Decoder group g: the prior N(mu_p, sigma_p) from the decoder state h, the residual
posterior N(mu_p + dmu, sigma_p * dsigma) from h and the encoder's features of the same place,
then h <- 1x1 conv of [h, z]. With `flows` > 0, the posterior sample passes through that many
flow cells (FlowCell: volume-preserving inverse autoregressive shifts, alternating raster
direction) before it is used; the prior path has none. Every residual branch is scaled by 0.1 and every Gaussian
parameter soft-clamped to (-5, 5), as in the paper's code, which keeps early steps finite.
"""
from collections.abc import Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.conv import Conv
from jaxgen.nn.encoders import upsample
from jaxgen.nn.masked import MaskedConv

Array = jax.Array
BRANCH_SCALE = 0.1
# The prior and posterior convs start near zero: p = q = N(0, I) and KL = 0 at step 0 (exactly
# zero would leave their power-iteration vectors at zero for good).
NEAR_ZERO = nn.initializers.normal(1e-3)


def soft_clamp(x: Array, bound: float = 5.0) -> Array:
    return bound * jnp.tanh(x / bound)


class SqueezeExcite(nn.Module):
    """Channel gates from the spatial mean: [B, H, W, C] -> same shape."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c = x.shape[-1]
        s = nn.relu(nn.Dense(max(c // 16, 4))(jnp.mean(x, axis=(1, 2))))
        return x * nn.sigmoid(nn.Dense(c)(s))[:, None, None, :]


class DepthwiseConv(nn.Module):
    """A 'SAME' depthwise convolution (kernel [k, k, 1, C], as flax's grouped conv) computed as
    k^2 shifted products: XLA's CPU backend ran the grouped conv's gradient 2.6x slower."""

    size: int = 5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, c = self.size, x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c))
        h, w = x.shape[1:3]
        xp = jnp.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
        y = sum(xp[:, i:i + h, j:j + w] * kernel[i, j, 0] for i in range(k) for j in range(k))
        return y + self.param("bias", nn.initializers.zeros, (c,))


class EncoderCell(nn.Module):
    """BN-Swish-conv3x3 twice, then SE, added to the input. `downsample` halves the resolution
    (stride-2 first conv; the skip is a 2x2 mean pool and a 1x1 conv) to `features` channels."""

    features: int
    downsample: bool = False
    bn_momentum: float = 0.95

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        bn = lambda: nn.BatchNorm(not train, momentum=self.bn_momentum)  # noqa: E731
        stride = 2 if self.downsample else 1
        skip = x
        if self.downsample or x.shape[-1] != self.features:
            skip = nn.avg_pool(x, (stride, stride), (stride, stride))
            skip = Conv(self.features, (1, 1))(skip)
        h = Conv(self.features, (3, 3), strides=(stride, stride))(nn.swish(bn()(x)))
        h = Conv(self.features, (3, 3))(nn.swish(bn()(h)))
        return skip + BRANCH_SCALE * SqueezeExcite()(h)


class GenerativeCell(nn.Module):
    """BN, 1x1 expand, BN-Swish, depthwise 5x5, BN-Swish, 1x1, BN, SE, added to the input.
    `upsample` first doubles the resolution (nearest, then a 1x1 conv to `features`)."""

    features: int
    expand: int = 6
    upsample: bool = False
    bn_momentum: float = 0.95

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        bn = lambda: nn.BatchNorm(not train, momentum=self.bn_momentum)  # noqa: E731
        if self.upsample:
            x = upsample(x)
        if self.upsample or x.shape[-1] != self.features:
            x = Conv(self.features, (1, 1))(x)
        wide = self.features * self.expand
        h = Conv(wide, (1, 1))(bn()(x))
        h = nn.swish(bn()(h))
        h = DepthwiseConv(5)(h)
        h = Conv(self.features, (1, 1))(nn.swish(bn()(h)))
        return x + BRANCH_SCALE * SqueezeExcite()(bn()(h))


class FlowCell(nn.Module):
    """NVAE's flow cell: z -> z - mu(z, context), where mu at each latent position reads z only
    at the positions before it in raster order (after it, with `flip`) through masked convs,
    and the encoder's context everywhere. Its Jacobian is triangular with a unit diagonal, so
    the posterior's density is unchanged by it (log-det 0): an inverse autoregressive flow of
    shifts only, as the paper's code."""

    hidden: int
    flip: bool

    @nn.compact
    def __call__(self, z: Array, context: Array) -> Array:
        turn = (lambda a: a[:, ::-1, ::-1]) if self.flip else (lambda a: a)  # noqa: E731
        x = turn(z)
        h = MaskedConv(self.hidden, (3, 3), "A", 1)(x) + Conv(self.hidden, (1, 1))(turn(context))
        h = MaskedConv(self.hidden, (3, 3), "B", 1)(nn.elu(h))
        mu = MaskedConv(z.shape[-1], (3, 3), "B", 1)(nn.elu(h))
        return turn(x - BRANCH_SCALE * mu)


@flax.struct.dataclass
class Group:
    """One latent group of a decoder pass, each [B, h, w, latent_ch]."""

    z: Array
    prior_mean: Array
    prior_log_std: Array
    d_mean: Array | None  # the posterior's residual parameters; None when sampling the prior
    d_log_std: Array | None
    z_base: Array | None = None  # with flow cells: the Gaussian draw they transformed into z


class NVAENet(nn.Module):
    """Bottom-up encoder and top-down decoder. Widths double at each halving of the resolution:
    `pre_blocks` blocks of `outer_cells` cells go from the image to the finest latent scale (and
    back up after it); `groups[s]` groups of `cells` cells each at latent scale s, coarsest
    first."""

    ch: int
    latent_ch: int
    groups: Sequence[int]
    cells: int
    pre_blocks: int
    outer_cells: int
    expand: int
    out_ch: int
    top_size: tuple[int, int]  # the coarsest scale's h, w
    bn_momentum: float = 0.95
    flows: int = 0  # flow cells per group in the posterior

    def width(self, level: int) -> int:
        """Channels after `level` halvings of the resolution."""
        return self.ch * 2 ** level

    def setup(self):
        enc = lambda f, down=False: EncoderCell(f, down, self.bn_momentum)  # noqa: E731
        gen = lambda f, up=False: GenerativeCell(f, self.expand, up, self.bn_momentum)  # noqa: E731
        scales, top = len(self.groups), self.pre_blocks + len(self.groups) - 1
        self.stem = Conv(self.ch, (3, 3))
        self.pre = [enc(self.width(b + (i == self.outer_cells - 1)), i == self.outer_cells - 1)
                    for b in range(self.pre_blocks) for i in range(self.outer_cells)]
        # Bottom-up, finest scale first; a downsampling cell between scales.
        tower, down = [], []
        for s in reversed(range(scales)):
            level = top - s
            tower.append([[enc(self.width(level)) for _ in range(self.cells)]
                          for _ in range(self.groups[s])])
            down.append(enc(self.width(level + 1), True) if s else None)
        self.tower, self.down = tower, down
        self.top_input = self.param("top_input", nn.initializers.normal(1.0),
                                    (1, *self.top_size, self.width(top)))
        dec, prior, post, enc_in, combine, up, flows = [], [], [], [], [], [], []
        for s in range(scales):
            level = top - s
            for g in range(self.groups[s]):
                first = s == 0 and g == 0
                dec.append([] if first else [gen(self.width(level)) for _ in range(self.cells)])
                flows.append([FlowCell(self.width(level), i % 2 == 1) for i in range(self.flows)])
                prior.append(Conv(2 * self.latent_ch, (3, 3), kernel_init=NEAR_ZERO))
                post.append(Conv(2 * self.latent_ch, (3, 3), kernel_init=NEAR_ZERO))
                enc_in.append(Conv(self.width(level), (1, 1)))
                combine.append(Conv(self.width(level), (1, 1)))
            up.append(gen(self.width(level - 1), True) if s < scales - 1 else None)
        self.dec, self.prior, self.post = dec, prior, post
        self.enc_in, self.combine, self.up, self.flow_cells = enc_in, combine, up, flows
        self.post_cells = [gen(self.width(b - 1), i == 0)
                           for b in reversed(range(1, self.pre_blocks + 1))
                           for i in range(self.outer_cells)]
        self.out = Conv(self.out_ch, (3, 3))

    def encode(self, x: Array, train: bool) -> list[Array]:
        """Images -> the encoder's features for each latent group, in decoder order."""
        h = self.stem(x)
        for cell in self.pre:
            h = cell(h, train)
        feats = []
        for groups, down in zip(self.tower, self.down):
            for cells in groups:
                for cell in cells:
                    h = cell(h, train)
                feats.append(h)
            if down is not None:
                h = down(h, train)
        return feats[::-1]

    def decode(self, eps: Sequence[Array], feats: Sequence[Array] | None, train: bool,
               temperature: float = 1.0) -> tuple[Array, list[Group]]:
        """Standard normal noise per group -> (decoder outputs [B, H, W, out_ch], the groups).
        With encoder features z is drawn from the posterior (then through the flow cells),
        without them from the prior with its std scaled by `temperature`."""
        h = jnp.broadcast_to(self.top_input, (eps[0].shape[0],) + self.top_input.shape[1:])
        groups, g = [], 0
        for s, n in enumerate(self.groups):
            for _ in range(n):
                for cell in self.dec[g]:
                    h = cell(h, train)
                mean, log_std = jnp.split(soft_clamp(self.prior[g](nn.elu(h))), 2, -1)
                if feats is None:
                    z = mean + temperature * jnp.exp(log_std) * eps[g]
                    groups.append(Group(z, mean, log_std, None, None))
                else:
                    context = feats[g] + self.enc_in[g](h)
                    d_mean, d_log_std = jnp.split(soft_clamp(self.post[g](nn.elu(context))), 2,
                                                  -1)
                    z = z_base = mean + d_mean + jnp.exp(log_std + d_log_std) * eps[g]
                    for cell in self.flow_cells[g]:
                        z = cell(z, context)
                    groups.append(Group(z, mean, log_std, d_mean, d_log_std,
                                        z_base if self.flows else None))
                h = self.combine[g](jnp.concatenate([h, z], -1))
                g += 1
            if self.up[s] is not None:
                h = self.up[s](h, train)
        for cell in self.post_cells:
            h = cell(h, train)
        return self.out(nn.elu(h)), groups

    def __call__(self, x: Array, eps: Sequence[Array], train: bool) -> tuple[Array, list[Group]]:
        return self.decode(eps, self.encode(x, train), train)


def latent_shapes(image_shape: Sequence[int], groups: Sequence[int], pre_blocks: int,
                  latent_ch: int) -> list[tuple[int, int, int]]:
    """The shape [h, w, latent_ch] of each group's z, in decoder order."""
    shapes = []
    for s, n in enumerate(groups):
        f = 2 ** (pre_blocks + len(groups) - 1 - s)
        shapes += [(image_shape[0] // f, image_shape[1] // f, latent_ch)] * n
    return shapes


# -- spectral regularisation: power iteration on every conv kernel ---------------------------

def _as_matrix(kernel: Array) -> Array:
    """A conv kernel [kh, kw, in, out] as the matrix [out, kh kw in] whose norm is regularised."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def _normalize(v: Array) -> Array:
    return v / (jnp.linalg.norm(v) + 1e-12)


def power_iteration(w: Array, u: Array, iters: int) -> tuple[Array, Array]:
    """(sigma, u'): the estimate u'^T W v of W's largest singular value after `iters` power
    steps from the left vector u; differentiable in W with u', v held fixed."""
    w_const = jax.lax.stop_gradient(w)
    u = jax.lax.fori_loop(0, iters, lambda _, u: _normalize(w_const @ _normalize(w_const.T @ u)),
                          u)
    v = _normalize(w_const.T @ u)
    return u @ (w @ v), u


def conv_kernels(params) -> dict[tuple[str, ...], Array]:
    """{path: kernel} of every conv kernel (4-D 'kernel') in a params tree."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    return {k: v for k, v in flat.items() if k[-1] == "kernel" and v.ndim == 4}


def _bucket(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _iterate(params, left: dict, iters: int) -> tuple[Array, dict]:
    """(sum of the estimates, {path: u'}): `power_iteration` of every conv kernel from its left
    vector in `left` ({path: u}). Kernels are zero-padded (which keeps their singular values)
    to power-of-two shapes and each bucket iterated at once (vmap): few ops to compile."""
    buckets: dict[tuple[int, int], list] = {}
    for path, kernel in conv_kernels(params).items():
        w = _as_matrix(kernel)
        buckets.setdefault((_bucket(w.shape[0]), _bucket(w.shape[1])), []).append((path, w))
    total, new = 0.0, {}
    for (rows, cols), items in buckets.items():
        ws = jnp.stack([jnp.pad(w, ((0, rows - w.shape[0]), (0, cols - w.shape[1])))
                        for _, w in items])
        us = jnp.stack([jnp.pad(left[p], (0, rows - w.shape[0])) for p, w in items])
        sigmas, us = jax.vmap(power_iteration, (0, 0, None))(ws, us, iters)
        total = total + jnp.sum(sigmas)
        new.update((p, u[:w.shape[0]]) for (p, w), u in zip(items, us))
    return total, new


def init_spectral_vectors(params, rng: Array, iters: int = 20) -> dict:
    """The power-iteration vectors of every conv kernel, a nested dict like `params`, run
    `iters` steps from random starts."""
    kernels = conv_kernels(params)
    keys = jax.random.split(rng, len(kernels))
    start = {p: jax.random.normal(k, w.shape[-1:]) for k, (p, w) in zip(keys, kernels.items())}
    return flax.traverse_util.unflatten_dict(_iterate(params, start, iters)[1])


def spectral_penalty(params, vectors: dict, iters: int = 1) -> tuple[Array, dict]:
    """(sum over conv kernels of their largest singular value, the updated vectors)."""
    total, new = _iterate(params, flax.traverse_util.flatten_dict(vectors), iters)
    return total, flax.traverse_util.unflatten_dict(new)


def batchnorm_penalty(params) -> Array:
    """Sum over batch norms of their largest |scale| (the paper's BN weight decay)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    return sum(jnp.max(jnp.abs(v)) for k, v in flat.items()
               if k[-1] == "scale" and k[-2].startswith("BatchNorm"))
