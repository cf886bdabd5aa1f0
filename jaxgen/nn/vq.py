"""Vector quantization (van den Oord et al. 2017, "Neural Discrete Representation Learning") and
the VQ-VAE's convolutional encoder and decoder with residual stacks; several levels of codes as
in VQ-VAE-2 (Razavi et al. 2019).

The codebooks are not trained by gradients: each follows the encoder outputs assigned to it by
exponential moving averages (the paper's appendix A.1, the only update VQ-VAE-2 uses), which is
online k-means on the codebook loss ||sg[z_e] - e||^2. The counts are Laplace-smoothed so an
unused code divides by no zero, and codes whose count decays below a threshold are re-seeded
with encoder outputs of the current batch.
"""
from collections.abc import Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.conv import Conv
from jaxgen.nn.encoders import upsample

Array = jax.Array
# Full float32 matmuls: the default on GPU/TPU (TF32, bf16 passes) can flip near-tie codes.
HIGHEST = jax.lax.Precision.HIGHEST


@flax.struct.dataclass
class Codebook:
    embeddings: Array  # [K, D]: the codes, sums / smoothed counts
    counts: Array  # [K]: EMA of the number of vectors assigned to each code per step
    sums: Array  # [K, D]: EMA of the sum of the vectors assigned to each code


def codebook_from(vectors: Array) -> Codebook:
    """A codebook whose codes are `vectors` [K, D], each counted once."""
    return Codebook(vectors, jnp.ones(vectors.shape[0]), vectors)


def random_picks(z: Array, k: int, rng: Array) -> Array:
    """k rows of z [N, D] drawn at random, distinct ones when N >= k."""
    return z[jax.random.choice(rng, z.shape[0], (k,), replace=z.shape[0] < k)]


def nearest_codes(z: Array, embeddings: Array) -> Array:
    """The index [...] of the code nearest to each vector of z [..., D] in squared distance."""
    cross = jnp.matmul(z, embeddings.T, precision=HIGHEST)
    dist = jnp.sum(z**2, -1, keepdims=True) - 2.0 * cross + jnp.sum(embeddings**2, -1)
    return jnp.argmin(dist, -1)


def straight_through(z: Array, z_q: Array) -> Array:
    """z_q in the forward pass; the identity's gradient to z in the backward pass."""
    return z + jax.lax.stop_gradient(z_q - z)


def ema_update(book: Codebook, z: Array, codes: Array, decay: float, eps: float) -> Codebook:
    """One EMA step from the vectors z [N, D] assigned to codes [N]:
    N_k <- decay N_k + (1 - decay) n_k, m_k <- decay m_k + (1 - decay) sum_{i: code i = k} z_i,
    e_k = m_k / ((N_k + eps) / (sum N + K eps) * sum N)."""
    k = book.counts.shape[0]
    onehot = jax.nn.one_hot(codes, k, dtype=z.dtype)
    counts = decay * book.counts + (1.0 - decay) * jnp.sum(onehot, 0)
    sums = decay * book.sums + (1.0 - decay) * jnp.matmul(onehot.T, z, precision=HIGHEST)
    total = jnp.sum(counts)
    smoothed = (counts + eps) / (total + k * eps) * total
    return Codebook(sums / smoothed[:, None], counts, sums)


def reseed_dead(book: Codebook, z: Array, rng: Array, min_count: float) -> tuple[Codebook, Array]:
    """Codes whose count fell below min_count restart at random vectors of z [N, D] (distinct
    ones when N >= K), counted once; returns the codebook and the number of codes re-seeded."""
    dead = book.counts < min_count
    k = book.counts.shape[0]
    fresh = codebook_from(random_picks(z, k, rng))
    book = jax.tree.map(lambda new, old: jnp.where(
        dead.reshape((-1,) + (1,) * (old.ndim - 1)), new, old), fresh, book)
    return book, jnp.sum(dead)


def perplexity(codes: Array, k: int) -> Array:
    """exp(entropy) of the code frequencies in `codes`: K when all K are used equally, 1 when
    one code is used."""
    p = jnp.mean(jax.nn.one_hot(codes.reshape(-1), k), 0)
    return jnp.exp(-jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12))))


class ResidualStack(nn.Module):
    """`blocks` residual blocks x + conv1x1(relu(conv3x3(relu(x)))), then a ReLU."""

    features: int
    hidden: int
    blocks: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for _ in range(self.blocks):
            h = Conv(self.hidden, (3, 3))(nn.relu(x))
            x = x + Conv(self.features, (1, 1))(nn.relu(h))
        return nn.relu(x)


class Downsampler(nn.Module):
    """`steps` 4x4 stride-2 convs (ReLU between; half the features before the last), a 3x3 conv
    and a residual stack: the VQ-VAE encoder, or one more level of VQ-VAE-2's."""

    features: int
    hidden: int
    blocks: int
    steps: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for i in range(self.steps):
            x = Conv(self.features // (2 if i < self.steps - 1 else 1), (4, 4), (2, 2))(x)
            x = nn.relu(x)
        x = Conv(self.features, (3, 3))(x)
        return ResidualStack(self.features, self.hidden, self.blocks)(x)


class Upsampler(nn.Module):
    """A 3x3 conv, a residual stack, and `steps` 2x upsamplings, each a nearest-neighbour
    upsample and a 3x3 conv (see encoders.upsample) where the paper has a 4x4 stride-2
    transposed conv; the last to `out` channels without ReLU."""

    features: int
    hidden: int
    blocks: int
    steps: int
    out: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = Conv(self.features, (3, 3))(x)
        x = ResidualStack(self.features, self.hidden, self.blocks)(x)
        for i in range(self.steps):
            last = i == self.steps - 1
            x = Conv(self.out if last else self.features // 2, (3, 3))(upsample(x))
            x = x if last else nn.relu(x)
        return x


class VQVAE(nn.Module):
    """`levels` of codes; level 0 at 1/4 of the image side, each further one at half the side of
    the one below (VQ-VAE: 1 level; VQ-VAE-2: 2). Quantization runs top-down: the vectors of
    level l are computed from its encoder features and the decoding of level l + 1's codes.
    The image decoder reads every level's codes, the higher ones upsampled to level 0's size."""

    features: int
    hidden: int  # residual blocks' hidden width
    blocks: int
    code_dim: int
    levels: int
    channels: int  # of the images

    def setup(self):
        f, h, b = self.features, self.hidden, self.blocks
        self.down = [Downsampler(f, h, b, 2 if l == 0 else 1) for l in range(self.levels)]
        self.pre = [Conv(self.code_dim, (1, 1)) for _ in range(self.levels)]
        self.cond = [Upsampler(f, h, b, 1, self.code_dim) for _ in range(self.levels - 1)]
        self.lift = [Conv(self.code_dim, (3, 3)) for _ in range(self.levels - 1)]
        self.up = Upsampler(f, h, b, 2, self.channels)

    def encode(self, x: Array, embeddings: Sequence[Array]
               ) -> tuple[list[Array], list[Array], list[Array]]:
        """x [B, H, W, C] -> per level (bottom first) the encoder outputs z_e [B, h, w, D], their
        codes [B, h, w] and the straight-through quantized vectors [B, h, w, D]."""
        feats = []
        for down in self.down:
            x = down(x)
            feats.append(x)
        z_e, codes, z_q = [None] * self.levels, [None] * self.levels, [None] * self.levels
        for l in reversed(range(self.levels)):
            h = feats[l]
            if l < self.levels - 1:
                h = jnp.concatenate([h, self.cond[l](z_q[l + 1])], -1)
            z_e[l] = self.pre[l](h)
            codes[l] = nearest_codes(z_e[l], embeddings[l])
            z_q[l] = straight_through(z_e[l], embeddings[l][codes[l]])
        return z_e, codes, z_q

    def decode(self, z_q: Sequence[Array]) -> Array:
        """Quantized vectors per level (bottom first) -> the image [B, H, W, C] in model space."""
        parts = [z_q[0]]
        for l in range(1, self.levels):
            v = z_q[l]
            for _ in range(l):
                v = upsample(v)
            parts.append(self.lift[l - 1](v))
        return self.up(jnp.concatenate(parts, -1))

    def decode_codes(self, codes: Sequence[Array], embeddings: Sequence[Array]) -> Array:
        return self.decode([e[c] for e, c in zip(embeddings, codes)])

    def __call__(self, x: Array, embeddings: Sequence[Array]):
        z_e, codes, z_q = self.encode(x, embeddings)
        return self.decode(z_q), z_e, codes


def vqvae_net(m, channels: int) -> VQVAE:
    """The VQVAE of a vqvae config's model block `m`, for images of `channels` channels."""
    return VQVAE(m.features, m.hidden, m.blocks, m.code_dim, m.levels, channels)


def code_shapes(levels: int, shape: Sequence[int]) -> list[tuple[int, int]]:
    """(h, w) of each level's code map, bottom first, for images of shape (H, W, C)."""
    return [(shape[0] // 2 ** (l + 2), shape[1] // 2 ** (l + 2)) for l in range(levels)]


def embeddings_of(model_state: dict) -> list[Array]:
    """Each level's codebook vectors, from a VQ-VAE's model_state {'codebooks': [Codebook]}."""
    return [book.embeddings for book in model_state["codebooks"]]
