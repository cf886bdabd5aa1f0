"""The ResNet GAN of Gulrajani et al. 2017 (WGAN-GP, CIFAR-10): residual blocks, nearest
upsampling in G, mean-pool downsampling in D and a global sum pool before D's head; D has no
normalisation, as a gradient penalty needs."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.conv import Conv
from jaxgen.nn.encoders import upsample
from jaxgen.nn.gan_layers import BatchNorm, before_last, critic_layers, num_stages

Array = jax.Array


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


class ResNetGenerator(nn.Module):
    """z [B, Z] -> a small map of `width` channels, one up-block per 2x stage, BN, ReLU, a 3x3
    conv to the image's channels, tanh."""

    width: int
    shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, z: Array) -> Array:
        h, _, c = self.shape
        n = num_stages(h)
        side = h // 2**n
        x = nn.Dense(side * side * self.width)(z).reshape(-1, side, side, self.width)
        for _ in range(n):
            x = GResBlock(self.width)(x)
        return jnp.tanh(Conv(c, (3, 3))(nn.relu(BatchNorm()(x))))


class ResNetCritic(nn.Module):
    """images [B, H, W, C] -> features [B, width]: down-blocks to a quarter of the side or less
    (one at least), two more blocks, ReLU and a sum over positions."""

    width: int
    mbstd: int = 0  # group of a minibatch-stddev feature into the last block; 0: none
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        downs = max(num_stages(x.shape[1]) - 1, 1)
        for i in range(downs + 2):
            x = DResBlock(self.width, i < downs, i == 0, self.spectral_norm)(
                before_last(x, i, downs + 2, self.mbstd))
        return jnp.sum(nn.relu(x), axis=(1, 2))
