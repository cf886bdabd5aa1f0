"""Generators and critics of the GAN family, optionally conditioned on a class label.

mlp:    fully connected, as in Goodfellow et al. 2014; G's hidden layers have batch norm and
        LeakyReLU(0.2), which keeps an MLP generator from collapsing onto a few digits.
dcgan:  Radford et al. 2016: G projects z to a small map, then stride-2 transposed convs with
        batch norm and ReLU; D is stride-2 convs with LeakyReLU(0.2), with the paper's batch
        norm after all but the first only if asked (batchnorm=True).
resnet: Gulrajani et al. 2017 (WGAN-GP, CIFAR-10): residual blocks, nearest upsampling in G,
        mean-pool downsampling in D, a global sum pool before D's head.

Either conv net can take one hidden dense layer (fc > 0): in G between z and the projection
(batch norm, ReLU), in D between the conv features and the head (LeakyReLU), as in the MNIST
nets of InfoGAN (Chen et al. 2016), 1024 wide.

The number of 2x stages is fixed by the image side: halve it while it stays even and >= 8
(28 -> 14 -> 7: two stages; 32 -> 16 -> 8 -> 4: three). A conditional G concatenates a label
embedding to z; a conditional D adds the projection <embed(y), features> (Miyato & Koyama 2018).
An InfoGAN G (Chen et al. 2016) takes a uniform K-way code the same way, and its D has a second
head Q (one hidden layer of 128) that guesses that code from the image.
By default critics keep no batch statistics, so each output depends only on its own input,
which the gradient penalties rely on. Three options break that and so exclude a penalty: batch
norm (mlp and dcgan critics); the minibatch standard deviation (Karras et al. 2018), a feature
that lets D see how varied a group of samples is; and PacGAN's packing (Lin et al. 2018): D
scores packs of m consecutive images stacked on channels, so a generator that repeats itself is
easy to spot. Spectral normalisation (Miyato et al. 2018) divides every weight matrix of the
critic (a conv kernel as [k*k*in, out]) by its largest singular value: dense layers become
1-Lipschitz, convs roughly so, as in the paper. It keeps outputs per sample, so it goes with any
loss or penalty.
"""
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError
from jaxgen.nn.conv import Conv, ConvTranspose
from jaxgen.nn.encoders import upsample

Array = jax.Array
ARCHS = ("mlp", "dcgan", "resnet")
UPSAMPLINGS = ("transposed", "subpixel")


def num_stages(side: int) -> int:
    """How many 2x up/down stages an image side allows (28 -> 2, 32 -> 3, 64 -> 4)."""
    n = 0
    while side % 2 == 0 and side // 2 >= 4:
        side, n = side // 2, n + 1
    return n


def check_arch(arch: str, upsampling: str, shape: Sequence[int]) -> None:
    if arch not in ARCHS:
        raise UserError(f"unknown model.arch {arch!r}; use one of {', '.join(ARCHS)}")
    if upsampling not in UPSAMPLINGS:
        raise UserError(f"unknown model.upsample {upsampling!r}; use one of "
                        f"{', '.join(UPSAMPLINGS)}")
    if arch != "mlp" and (shape[0] != shape[1] or num_stages(shape[0]) == 0):
        raise UserError(f"model.arch {arch} needs square images with an even side >= 8, got "
                        f"{shape[0]}x{shape[1]}; use model.arch=mlp")


class BatchNorm(nn.Module):
    """Batch norm with the current batch's statistics in training and sampling alike, as
    DCGAN generators are usually run; it keeps no running averages, so an EMA generator needs
    no recomputed statistics."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        axes = tuple(range(x.ndim - 1))
        mean, var = jnp.mean(x, axes), jnp.var(x, axes)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias


def spectral_norm(w: Array) -> Array:
    """The largest singular value of a kernel [..., out] (as a matrix [-1, out]) or embedding,
    computed exactly, without the power-iteration state of Miyato et al.: the top eigenvector of
    the smaller Gram matrix (at most out x out, 128 x 128 here) is held constant and sigma =
    |W v|, whose gradient is then sigma's own, u v^T."""
    m = w.reshape(-1, w.shape[-1])
    if m.shape[0] < m.shape[1]:
        m = m.T
    _, vectors = jnp.linalg.eigh(jax.lax.stop_gradient(m.T @ m))
    return jnp.linalg.norm(m @ vectors[:, -1])


class SpectralNormed:
    """Mixin for a flax layer: its kernel or embedding is used divided by its spectral norm (the
    stored parameter stays unnormalised)."""

    def param(self, name: str, *args, **kwargs):
        value = super().param(name, *args, **kwargs)
        return value / spectral_norm(value) if name in ("kernel", "embedding") else value


class SNConv(SpectralNormed, Conv):
    pass


class SNDense(SpectralNormed, nn.Dense):
    pass


class SNEmbed(SpectralNormed, nn.Embed):
    pass


def critic_layers(normed: bool) -> tuple[type, type, type]:
    """The (Conv, Dense, Embed) classes of a critic, spectrally normalised or not."""
    return (SNConv, SNDense, SNEmbed) if normed else (Conv, nn.Dense, nn.Embed)


def _mean_pool(x: Array) -> Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class GResBlock(nn.Module):
    """BN, ReLU, 2x upsample, 3x3 conv, BN, ReLU, 3x3 conv; shortcut: upsample, 1x1 conv."""

    width: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = upsample(nn.relu(BatchNorm()(x)))
        h = Conv(self.width, (3, 3))(h)
        h = Conv(self.width, (3, 3))(nn.relu(BatchNorm()(h)))
        return h + Conv(self.width, (1, 1))(upsample(x))


def pack(x: Array, m: int) -> Array:
    """[B, H, W, C] -> [B / m, H, W, m * C]: each m consecutive images stacked on channels."""
    if x.shape[0] % m:
        raise UserError(f"model.d_pack ({m}) must divide the critic's batch ({x.shape[0]})")
    b, h, w, c = x.shape
    return x.reshape(b // m, m, h, w, c).transpose(0, 2, 3, 1, 4).reshape(b // m, h, w, m * c)


def minibatch_stddev(x: Array, group: int) -> Array:
    """Appends one feature to x [B, ..., F]: within each group of `group` consecutive rows, the
    standard deviation over the group of every feature, averaged over features (and positions)."""
    if x.shape[0] % group:
        raise UserError(f"model.d_mbstd ({group}) must divide the critic's batch ({x.shape[0]})")
    groups = x.reshape((x.shape[0] // group, group) + x.shape[1:])
    std = jnp.sqrt(jnp.var(groups, axis=1) + 1e-8)
    stat = jnp.mean(std, axis=tuple(range(1, std.ndim)), keepdims=True)  # [B / group, 1, ...]
    stat = jnp.broadcast_to(jnp.repeat(stat, group, axis=0), x.shape[:-1] + (1,))
    return jnp.concatenate([x, stat.astype(x.dtype)], axis=-1)


class DResBlock(nn.Module):
    """ReLU, 3x3 conv, ReLU, 3x3 conv, optional mean pool; shortcut 1x1 conv (+ pool) when the
    shape changes. `first` is the optimized first block: no ReLU on the raw image."""

    width: int
    down: bool
    first: bool = False
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = critic_layers(self.spectral_norm)[0]
        h = x if self.first else nn.relu(x)
        h = conv(self.width, (3, 3))(h)
        h = conv(self.width, (3, 3))(nn.relu(h))
        shortcut = x
        if self.down:
            h, shortcut = _mean_pool(h), _mean_pool(shortcut)
        if self.down or x.shape[-1] != self.width:
            shortcut = conv(self.width, (1, 1))(shortcut)
        return h + shortcut


class Generator(nn.Module):
    """(z [B, Z], labels [B]) -> images [B, H, W, C] in [-1, 1]."""

    arch: str
    width: int  # mlp: the last hidden layer's width (halved going back); conv: the base width
    depth: int  # mlp hidden layers
    shape: tuple[int, int, int]
    num_classes: int = 0  # 0: unconditional
    upsample: str = "transposed"  # dcgan: transposed or subpixel
    fc: int = 0  # conv archs: width of a hidden dense layer (BN, ReLU) before the projection

    def up(self, features: int, x: Array) -> Array:
        """A learned 2x upsampling: the paper's 4x4 stride-2 transposed conv, or a 3x3 conv to
        4x the channels and a depth-to-space shuffle (Shi et al. 2016). Each output pixel of the
        former reads a 2x2 input window, inside the latter's 3x3 one, so subpixel can express it;
        its gradient ran 4x faster on XLA's CPU backend (experiments/README.md)."""
        if self.upsample == "transposed":
            return ConvTranspose(features, (4, 4), strides=(2, 2))(x)
        b, h, w, _ = x.shape
        x = Conv(4 * features, (3, 3))(x).reshape(b, h, w, 2, 2, features)
        return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, features)

    @nn.compact
    def __call__(self, z: Array, labels: Array) -> Array:
        h, w, c = self.shape
        if self.num_classes:
            z = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1])(labels)], axis=-1)
        if self.arch == "mlp":
            for i in reversed(range(self.depth)):
                z = nn.leaky_relu(BatchNorm()(nn.Dense(self.width // 2**i)(z)), 0.2)
            return jnp.tanh(nn.Dense(h * w * c)(z)).reshape(-1, h, w, c)
        n = num_stages(h)
        side = h // 2**n
        ch = self.width * 2 ** (n - 1) if self.arch == "dcgan" else self.width
        if self.fc:
            z = nn.relu(BatchNorm()(nn.Dense(self.fc)(z)))
        x = nn.Dense(side * side * ch)(z).reshape(-1, side, side, ch)
        if self.arch == "dcgan":
            x = nn.relu(BatchNorm()(x))
            for i in range(n - 1):
                x = nn.relu(BatchNorm()(self.up(ch // 2 ** (i + 1), x)))
            return jnp.tanh(self.up(c, x))
        for _ in range(n):
            x = GResBlock(ch)(x)
        return jnp.tanh(Conv(c, (3, 3))(nn.relu(BatchNorm()(x))))


class Critic(nn.Module):
    """(images [B, H, W, C] in [-1, 1], labels [B]) -> one logit or score per image [B]."""

    arch: str
    width: int  # mlp: the first hidden layer's width (halved going on); conv: the base width
    depth: int
    num_classes: int = 0
    dropout: float = 0.0  # after each hidden layer of mlp and dcgan critics, in training
    mbstd: int = 0  # group size of a minibatch-stddev feature into the last hidden layer; 0: none
    batchnorm: bool = False  # after every hidden layer but the first (mlp, dcgan)
    spectral_norm: bool = False  # of every weight, the projection embedding included
    info_codes: int = 0  # K > 0: an InfoGAN head Q on D's features guesses a K-way code
    fc: int = 0  # conv archs: width of a hidden dense layer (LeakyReLU) before the head
    pack: int = 0  # m >= 2: score packs of m consecutive images (PacGAN); labels unused

    @nn.compact
    def __call__(self, x: Array, labels: Array, train: bool = False,
                 code_logits: bool = False) -> Array | tuple[Array, Array]:
        """Scores [B] (packed: [B / m]); with code_logits, also Q's logits [B, K] for the code
        that made x."""
        if self.pack > 1:
            x, labels = pack(x, self.pack), labels[::self.pack]
        conv, dense, embed = critic_layers(self.spectral_norm)
        drop = nn.Dropout(self.dropout, deterministic=not train or not self.dropout)
        last = lambda i, n, x: minibatch_stddev(x, self.mbstd) if self.mbstd and i == n - 1 else x
        norm = lambda i, x: BatchNorm()(x) if self.batchnorm and i > 0 else x
        if self.arch == "mlp":
            x = x.reshape(x.shape[0], -1)
            for i in range(self.depth):
                x = dense(self.width // 2**i)(last(i, self.depth, x))
                x = drop(nn.leaky_relu(norm(i, x), 0.2))
            features = x
        elif self.arch == "dcgan":
            n = num_stages(x.shape[1])
            for i in range(n):
                x = conv(self.width * 2**i, (4, 4), strides=(2, 2))(last(i, n, x))
                x = drop(nn.leaky_relu(norm(i, x), 0.2))
            features = x.reshape(x.shape[0], -1)
        else:
            downs = max(num_stages(x.shape[1]) - 1, 1)
            for i in range(downs + 2):
                x = DResBlock(self.width, i < downs, i == 0, self.spectral_norm)(
                    last(i, downs + 2, x))
            features = jnp.sum(nn.relu(x), axis=(1, 2))
        if self.fc and self.arch != "mlp":
            features = drop(nn.leaky_relu(norm(1, dense(self.fc)(features)), 0.2))
        out = dense(1)(features)[:, 0]
        if self.num_classes:
            out += jnp.sum(embed(self.num_classes, features.shape[-1])(labels) * features, -1)
        if not self.info_codes:
            return out
        q = nn.Dense(self.info_codes)(nn.leaky_relu(nn.Dense(128)(features), 0.2))
        return (out, q) if code_logits else out
