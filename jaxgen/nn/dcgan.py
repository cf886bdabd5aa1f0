"""The DCGAN nets (Radford et al. 2016). G projects z to a small map, then learned 2x
upsamplings with batch norm and ReLU and a tanh output; D is 4x4 stride-2 convs with
LeakyReLU(0.2) (the paper's batch norm in D is left out: it made D win here, experiments/README.md).
The number of 2x stages is fixed by the image side (gan_layers.num_stages: 28 -> 14 -> 7 is two,
32 -> 16 -> 8 -> 4 three); channels double at each stage down."""
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen.errors import UserError
from jaxgen.nn.conv import Conv, ConvTranspose
from jaxgen.nn.gan_layers import BatchNorm, before_last, critic_layers, num_stages

Array = jax.Array
UPSAMPLINGS = ("transposed", "subpixel")


def check_shape(shape: tuple[int, ...], arch: str) -> None:
    """Conv GANs halve a square side down to at least 4."""
    if shape[0] != shape[1] or num_stages(shape[0]) == 0:
        raise UserError(f"model.arch {arch} needs square images with an even side >= 8, got "
                        f"{shape[0]}x{shape[1]}; use model.arch=mlp")


class DCGANGenerator(nn.Module):
    """z [B, Z] -> images [B, H, W, C] in [-1, 1]."""

    width: int  # channels of the last hidden map (doubling towards z)
    shape: tuple[int, int, int]
    upsample: str = "transposed"

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
    def __call__(self, z: Array) -> Array:
        h, _, c = self.shape
        n = num_stages(h)
        side, ch = h // 2**n, self.width * 2 ** (n - 1)
        x = nn.relu(BatchNorm()(nn.Dense(side * side * ch)(z).reshape(-1, side, side, ch)))
        for i in range(n - 1):
            x = nn.relu(BatchNorm()(self.up(ch // 2 ** (i + 1), x)))
        return jnp.tanh(self.up(c, x))


class DCGANCritic(nn.Module):
    """images [B, H, W, C] -> features [B, (H / 2^n) (W / 2^n) width 2^(n-1)]."""

    width: int  # channels of the first conv
    mbstd: int = 0  # group of a minibatch-stddev feature into the last conv; 0: none
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = critic_layers(self.spectral_norm)[0]
        n = num_stages(x.shape[1])
        for i in range(n):
            x = conv(self.width * 2**i, (4, 4), strides=(2, 2))(before_last(x, i, n, self.mbstd))
            x = nn.leaky_relu(x, 0.2)
        return x.reshape(x.shape[0], -1)
