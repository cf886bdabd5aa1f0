"""Pure objectives shared by every family.

Log-densities are elementwise unless the name says otherwise; `sum_except_batch` turns them into
per-example values. All values are in nats; `bits_per_dim` converts.
"""
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

LOG_2PI = math.log(2.0 * math.pi)


def sum_except_batch(x: Array) -> Array:
    """Sums every axis but the first: [B, ...] -> [B]."""
    return x.reshape(x.shape[0], -1).sum(axis=-1)


def bernoulli_log_prob(logits: Array, x: Array) -> Array:
    """log p(x) for x in {0, 1} (or [0, 1]) under Bernoulli(sigmoid(logits)), elementwise."""
    return x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)


def gaussian_log_prob(x: Array, mean: Array, log_std: Array) -> Array:
    """log N(x; mean, exp(log_std)^2), elementwise."""
    z = (x - mean) * jnp.exp(-log_std)
    return -0.5 * (z * z + LOG_2PI) - log_std


def discretized_logistic_log_prob(
    x: Array, mean: Array, log_scale: Array, num_bins: int = 256
) -> Array:
    """log P(x) of a logistic discretized to `num_bins` values evenly spaced on [-1, 1], elementwise.

    The bin of x is [x - h, x + h] with h = 1 / (num_bins - 1); the two edge bins take the tails.
    """
    half_bin = 1.0 / (num_bins - 1)
    inv_scale = jnp.exp(-log_scale)
    upper = (x - mean + half_bin) * inv_scale
    lower = (x - mean - half_bin) * inv_scale
    log_cdf_upper = jax.nn.log_sigmoid(upper)
    log_sf_lower = jax.nn.log_sigmoid(-lower)  # log(1 - sigmoid(lower))
    # log(sigmoid(u) - sigmoid(l)) written stably: sigmoid(u) - sigmoid(l) =
    # sigmoid(u) * sigmoid(-l) * (1 - exp(l - u)).
    log_mass = log_cdf_upper + log_sf_lower + jnp.log(-jnp.expm1(lower - upper))
    # When the bin is far in a tail the product above underflows; the density at the centre
    # times the bin width is then an accurate approximation.
    centre = (x - mean) * inv_scale
    log_density = centre - log_scale - 2.0 * jax.nn.softplus(centre)
    log_mass = jnp.where(upper - lower > 1e-5, log_mass, log_density + jnp.log(2 * half_bin))
    edge = 1.0 - half_bin
    return jnp.where(x < -edge, log_cdf_upper, jnp.where(x > edge, log_sf_lower, log_mass))


def gaussian_kl(
    mean_q: Array, log_std_q: Array, mean_p: Array | float = 0.0, log_std_p: Array | float = 0.0
) -> Array:
    """KL(N(mean_q, std_q^2) || N(mean_p, std_p^2)) for diagonal Gaussians, elementwise."""
    var_ratio = jnp.exp(2.0 * (log_std_q - log_std_p))
    diff = (mean_q - mean_p) * jnp.exp(-log_std_p)
    return 0.5 * (var_ratio + diff * diff - 1.0) - (log_std_q - log_std_p)


def residual_normal_kl(d_mean: Array, d_log_std: Array, log_std_p: Array) -> Array:
    """KL(q || p) for p = N(mean_p, std_p^2) and NVAE's residual posterior
    q = N(mean_p + d_mean, (std_p * exp(d_log_std))^2), elementwise: mean_p cancels."""
    diff = d_mean * jnp.exp(-log_std_p)
    return 0.5 * (diff * diff + jnp.exp(2.0 * d_log_std) - 1.0) - d_log_std


def iwae_bound(log_weights: Array, axis: int = 0) -> Array:
    """log (1/K) sum_k exp(log_weights_k) over `axis`: the importance-weighted bound."""
    k = log_weights.shape[axis]
    return jax.nn.logsumexp(log_weights, axis=axis) - math.log(k)


def merge_moments(stats: dict, x: Array) -> dict:
    """Adds a batch [B, D] to running moments {n, mean, m2} (m2: the sum of centred outer
    products), with Chan et al.'s parallel update: stable in float32."""
    nb = x.shape[0]
    mean_b = x.mean(0)
    xc = x - mean_b
    n = stats["n"] + nb
    delta = mean_b - stats["mean"]
    return {"n": n, "mean": stats["mean"] + delta * (nb / n),
            "m2": stats["m2"] + xc.T @ xc + jnp.outer(delta, delta) * (stats["n"] * nb / n)}


def bits_per_dim(nll_nats: Array, num_dims: int) -> Array:
    """Per-example negative log-likelihood in nats -> bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))


def dequantized_bits_per_dim(nll_nats: Array, num_dims: int, num_bins: int = 256) -> Array:
    """Bits/dim over 8-bit pixels of a density fitted to uniformly dequantized data in [0, 1].

    A density p on y = (x + u) / num_bins bounds the discrete likelihood:
    -log P(x) <= -log p(y) + D log(num_bins) (the change of variables from [0, num_bins) to [0, 1]).
    """
    return bits_per_dim(nll_nats + num_dims * math.log(num_bins), num_dims)


# -- adversarial objectives: critic outputs are logits (minimax, nonsaturating) or scores --------

GAN_LOSSES = ("minimax", "nonsaturating", "wasserstein", "hinge")


def gan_d_loss(real: Array, fake: Array, kind: str) -> Array:
    """The discriminator's (critic's) loss, a mean over its outputs on real [B] and fake [B]."""
    if kind in ("minimax", "nonsaturating"):  # -log D(x) - log(1 - D(G(z)))
        return jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
    if kind == "wasserstein":  # the critic maximises E[D(x)] - E[D(G(z))]
        return jnp.mean(fake) - jnp.mean(real)
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
    raise ValueError(f"unknown GAN loss {kind!r}; use one of {GAN_LOSSES}")


def gan_g_loss(fake: Array, kind: str) -> Array:
    """The generator's loss on the critic's outputs for its samples, fake [B]."""
    if kind == "minimax":  # minimises log(1 - D(G(z))), which saturates when D wins
        return -jnp.mean(jax.nn.softplus(fake))
    if kind == "nonsaturating":  # maximises log D(G(z)) instead
        return jnp.mean(jax.nn.softplus(-fake))
    if kind in ("wasserstein", "hinge"):
        return -jnp.mean(fake)
    raise ValueError(f"unknown GAN loss {kind!r}; use one of {GAN_LOSSES}")


def _input_grad_norms_sq(critic, x: Array) -> Array:
    """||d critic(x)_i / d x_i||^2 per example [B]. Summing the outputs before differentiating is
    exact because a critic without batch statistics treats examples independently."""
    grads = jax.grad(lambda v: jnp.sum(critic(v)))(x)
    return sum_except_batch(grads * grads)


def gradient_penalty(critic, real: Array, fake: Array, rng: Array) -> Array:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)|| - 1)^2] at x_hat on random points of
    the segments between real and fake examples."""
    eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1))
    x_hat = eps * real + (1.0 - eps) * fake
    norms = jnp.sqrt(_input_grad_norms_sq(critic, x_hat) + 1e-12)
    return jnp.mean((norms - 1.0) ** 2)


def r1_penalty(critic, real: Array) -> Array:
    """R1 (Mescheder et al. 2018): E[||grad D(x)||^2] on real data; weighted by gamma / 2."""
    return jnp.mean(_input_grad_norms_sq(critic, real))


def path_lengths(generate: Callable[[Array], Array], ws: Array, y: Array) -> Array:
    """StyleGAN2's path lengths (Karras et al. 2020, eq. 4): per example [B], |J^T y| with J the
    Jacobian of the image generate(ws)_i by its styles ws_i [L, W] and y [B, ...] shaped like
    the images; as in the paper's code, the squared norm is summed over W and averaged over the
    L layers' styles. One backward pass of sum(generate(ws) * y) is exact because a generator
    treats examples independently."""
    grads = jax.grad(lambda v: jnp.sum(generate(v) * y))(ws)
    return jnp.sqrt(jnp.mean(jnp.sum(grads * grads, axis=-1), axis=1))


def discretized_gaussian_log_prob(
    x: Array, mean: Array, log_std: Array, num_bins: int = 256
) -> Array:
    """log P(x) of a Gaussian discretized to `num_bins` values evenly spaced on [-1, 1], elementwise
    (the DDPM decoder, Ho et al. 2020 eq. 13). Bins and edge tails as in
    `discretized_logistic_log_prob`."""
    half_bin = 1.0 / (num_bins - 1)
    inv_std = jnp.exp(-log_std)
    upper = (x - mean + half_bin) * inv_std
    lower = (x - mean - half_bin) * inv_std
    # log(Phi(u) - Phi(l)) on the side of 0 where the CDF values are small and accurate.
    flip = upper + lower > 0
    hi, lo = jnp.where(flip, -lower, upper), jnp.where(flip, -upper, lower)
    log_hi = jax.scipy.special.log_ndtr(hi)
    log_mass = log_hi + jnp.log(-jnp.expm1(jax.scipy.special.log_ndtr(lo) - log_hi))
    # A bin much narrower than the std: the density at the centre times the bin width.
    centre = (x - mean) * inv_std
    log_density = -0.5 * (centre * centre + LOG_2PI) - log_std + jnp.log(2 * half_bin)
    log_mass = jnp.where(upper - lower > 1e-3, log_mass, log_density)
    edge = 1.0 - half_bin
    return jnp.where(x < -edge, jax.scipy.special.log_ndtr(upper),
                     jnp.where(x > edge, jax.scipy.special.log_ndtr(-lower), log_mass))


def logistic_mixture_means(means: Array, coeffs: Array, x: Array) -> Array:
    """PixelCNN++'s channel coupling (Salimans et al. 2017, eq. 3): the mean of channel c of each
    component is mu_c + sum_{c' < c} coeff_{c, c'} x_{c'} (for RGB: mu_G + alpha R,
    mu_B + beta R + gamma G). means [..., C, K]; coeffs [..., C (C - 1) / 2, K] in the order
    (1, 0), (2, 0), (2, 1), ...; x [..., C] -> [..., C, K]."""
    rows, pair = [means[..., 0, :]], 0
    for c in range(1, means.shape[-2]):
        mean = means[..., c, :]
        for prev in range(c):
            mean = mean + coeffs[..., pair, :] * x[..., prev, None]
            pair += 1
        rows.append(mean)
    return jnp.stack(jnp.broadcast_arrays(*rows), axis=-2)


def discretized_logistic_mixture_log_prob(
    x: Array, logits: Array, means: Array, log_scales: Array, coeffs: Array, num_bins: int = 256
) -> Array:
    """log P(x) of whole pixels x [..., C] (values on the `num_bins` grid of [-1, 1]) under a
    mixture of K discretized logistics with coupled channel means (`logistic_mixture_means`):
    logits [..., K], means and log_scales [..., C, K], coeffs [..., C (C - 1) / 2, K] -> [...]."""
    mean = logistic_mixture_means(means, coeffs, x)
    per_channel = discretized_logistic_log_prob(x[..., None], mean, log_scales, num_bins)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits) + per_channel.sum(-2), axis=-1)


def reconstruction_errors(x: Array, recon: Array) -> dict[str, Array]:
    """Per-example MSE [B] between images in [0, 1] and the PSNR it gives (dB, peak 1)."""
    mse = jnp.mean((recon - x) ** 2, axis=tuple(range(1, x.ndim)))
    return {"mse": mse, "psnr": -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))}
