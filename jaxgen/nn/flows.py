"""Invertible layers for normalizing flows (NICE, RealNVP, Glow).

Every layer maps `__call__(x, reverse=False) -> (y, logdet)`: forward goes data -> latent,
reverse goes latent -> data, and `logdet` [B] is always log|det dy/dx| of the map just applied
(so the reverse call returns minus the forward log-det at its output).

Image layers work on NHWC; NICE's layers on flat [B, D]. Every coupling network's last layer
starts at zero (Glow), so a coupling is the identity at init (tanh scale) or a fixed scaling
(sigmoid scale). ActNorm's parameters are initialised from the data of the `init` call.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.conv import Conv

Array = jax.Array


def _sum(x: Array) -> Array:
    return x.reshape(x.shape[0], -1).sum(-1)


def _pixels(x: Array) -> int:
    """Positions sharing per-channel parameters: H * W for images, 1 for flat vectors."""
    return x[0, ..., 0].size


class MLP(nn.Module):
    """NICE's coupling function: ReLU MLP with a zero-initialised output layer."""

    hidden: int
    num_layers: int
    out: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for _ in range(self.num_layers):
            x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.zeros)(x)


class ConvNet(nn.Module):
    """Coupling network conv3x3-ReLU-conv1x1-ReLU-conv3x3, the last conv zero-initialised."""

    hidden: int
    out: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = nn.relu(Conv(self.hidden, (3, 3))(x))
        x = nn.relu(Conv(self.hidden, (1, 1))(x))
        return Conv(self.out, (3, 3), kernel_init=nn.initializers.zeros)(x)


class AdditiveCoupling(nn.Module):
    """NICE: y_b = x_b + m(x_a) over the even/odd halves of a flat vector; log-det 0."""

    hidden: int
    num_layers: int
    parity: int

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        pairs = x.reshape(x.shape[0], -1, 2)
        xa, xb = pairs[..., self.parity], pairs[..., 1 - self.parity]
        shift = MLP(self.hidden, self.num_layers, xb.shape[-1])(xa)
        yb = xb - shift if reverse else xb + shift
        halves = (xa, yb) if self.parity == 0 else (yb, xa)
        return jnp.stack(halves, -1).reshape(x.shape), jnp.zeros(x.shape[0])


class DiagScale(nn.Module):
    """NICE's last layer: y = x * exp(s)."""

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        s = self.param("log_scale", nn.initializers.zeros, x.shape[1:])
        s = -s if reverse else s
        return x * jnp.exp(s), jnp.full(x.shape[0], s.sum())


class AffineCoupling(nn.Module):
    """RealNVP/Glow: y_b = x_b * s(x_a) + t(x_a), with a checkerboard or channel mask.

    scale 'tanh': log s = w * tanh(h) (RealNVP, identity at init); 'sigmoid': s = sigmoid(h + 2)
    (Glow). parity swaps the roles of the two halves.
    """

    mask: str  # checkerboard or channel
    parity: int
    hidden: int
    scale: str = "tanh"

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        c = x.shape[-1]
        if self.mask == "checkerboard":
            h, w = x.shape[1:3]
            b = ((jnp.arange(h)[:, None] + jnp.arange(w)[None, :] + self.parity) % 2)
            b = b[None, :, :, None].astype(x.dtype)  # 1 where x passes unchanged
            shift, log_s = self._affine(x * b, c)
            shift, log_s = shift * (1 - b), log_s * (1 - b)
            y = (x - shift) * jnp.exp(-log_s) if reverse else x * jnp.exp(log_s) + shift
            return y, _sum(-log_s if reverse else log_s)
        xa, xb = jnp.split(x, 2, axis=-1)
        if self.parity:
            xa, xb = xb, xa
        shift, log_s = self._affine(xa, xb.shape[-1])
        yb = (xb - shift) * jnp.exp(-log_s) if reverse else xb * jnp.exp(log_s) + shift
        y = jnp.concatenate((yb, xa) if self.parity else (xa, yb), axis=-1)
        return y, _sum(-log_s if reverse else log_s)

    def _affine(self, xa: Array, out: int) -> tuple[Array, Array]:
        shift, raw = jnp.split(ConvNet(self.hidden, 2 * out)(xa), 2, axis=-1)
        if self.scale == "sigmoid":
            return shift, jax.nn.log_sigmoid(raw + 2.0)
        return shift, self.param("scale", nn.initializers.ones, (out,)) * jnp.tanh(raw)


class Squeeze(nn.Module):
    """Space-to-depth 2x2: [B, H, W, C] <-> [B, H/2, W/2, 4C]; log-det 0."""

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        b, h, w, c = x.shape
        if reverse:
            y = x.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
            return y.reshape(b, 2 * h, 2 * w, c // 4), jnp.zeros(b)
        y = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(b, h // 2, w // 2, 4 * c), jnp.zeros(b)


class ActNorm(nn.Module):
    """Glow's per-channel affine y = (x + loc) * exp(log_scale).

    Data-dependent init: the parameter initialisers read the `init` call's input, so the first
    batch comes out with zero mean and unit variance per channel.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        axes = tuple(range(x.ndim - 1))
        loc = self.param("loc", lambda _: -x.mean(axes))
        log_scale = self.param("log_scale", lambda _: -jnp.log(x.std(axes) + self.eps))
        logdet = jnp.full(x.shape[0], _pixels(x) * log_scale.sum())
        if reverse:
            return x * jnp.exp(-log_scale) - loc, -logdet
        return (x + loc) * jnp.exp(log_scale), logdet


def _orthogonal(rng: Array, c: int) -> Array:
    return jnp.linalg.qr(jax.random.normal(rng, (c, c)))[0]


class InvConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution y = x @ W over channels.

    Plain: W is a parameter and log|det| comes from slogdet. lu=True: W = P L (U + diag(sign
    * exp(log_s))) with P and sign fixed (collection 'constants'), L unit lower triangular, U
    strictly upper; all initialised from the LU of a random orthogonal matrix.
    """

    lu: bool = False

    @nn.compact
    def __call__(self, x: Array, reverse: bool = False) -> tuple[Array, Array]:
        c = x.shape[-1]
        if self.lu:
            w, log_abs = self._lu_weight(c)
        else:
            w = self.param("kernel", lambda rng: _orthogonal(rng, c))
            log_abs = jnp.linalg.slogdet(w)[1]
        logdet = jnp.full(x.shape[0], _pixels(x) * log_abs)
        if reverse:
            return x @ jnp.linalg.inv(w), -logdet
        return x @ w, logdet

    def _lu_weight(self, c: int) -> tuple[Array, Array]:
        # flax also traces initialisers at apply (shape checks), so they need a key there too
        rng = self.make_rng("params") if self.is_initializing() else jax.random.key(0)
        p0, l0, u0 = jax.scipy.linalg.lu(_orthogonal(rng, c))
        perm = self.variable("constants", "perm", lambda: p0).value
        sign = self.variable("constants", "sign", lambda: jnp.sign(jnp.diag(u0))).value
        lower = self.param("lower", lambda _: l0) * jnp.tril(jnp.ones((c, c)), -1)
        upper = self.param("upper", lambda _: u0) * jnp.triu(jnp.ones((c, c)), 1)
        log_s = self.param("log_s", lambda _: jnp.log(jnp.abs(jnp.diag(u0))))
        w = perm @ (lower + jnp.eye(c)) @ (upper + jnp.diag(sign * jnp.exp(log_s)))
        return w, log_s.sum()
