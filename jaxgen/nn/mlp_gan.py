"""The fully connected GAN of Goodfellow et al. 2014. G's hidden layers have batch norm and
LeakyReLU(0.2), which keeps an MLP generator from collapsing onto a few digits; D's have
LeakyReLU(0.2). Widths halve going away from the image: G ends at `width`, D starts at it."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.nn.gan_layers import BatchNorm, before_last, critic_layers

Array = jax.Array


class MLPGenerator(nn.Module):
    """z [B, Z] -> images [B, H, W, C] in [-1, 1]."""

    width: int  # the last hidden layer's
    depth: int  # hidden layers
    shape: tuple[int, int, int]

    @nn.compact
    def __call__(self, z: Array) -> Array:
        for i in reversed(range(self.depth)):
            z = nn.leaky_relu(BatchNorm()(nn.Dense(self.width // 2**i)(z)), 0.2)
        return jnp.tanh(nn.Dense(math.prod(self.shape))(z)).reshape((-1,) + self.shape)


class MLPCritic(nn.Module):
    """images [B, H, W, C] -> features [B, width / 2^(depth - 1)]."""

    width: int  # the first hidden layer's
    depth: int
    mbstd: int = 0  # group of a minibatch-stddev feature into the last hidden layer; 0: none
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dense = critic_layers(self.spectral_norm)[1]
        x = x.reshape(x.shape[0], -1)
        for i in range(self.depth):
            x = nn.leaky_relu(dense(self.width // 2**i)(before_last(x, i, self.depth,
                                                                     self.mbstd)), 0.2)
        return x

