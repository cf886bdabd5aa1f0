"""The adversarial core on a toy game whose every update can be written down: slices per
critic update, lazy regularisers, clipping, the EMA of G, skipped non-finite steps."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen import config as config_lib
from jaxgen.models import adversarial

LR = 0.5


def toy_game(n_critic=1, critic_every=1, generator_every=1, clip=0.0, weight=0.25):
    """Scalar players. D's loss d * mean(slice), its penalty weight * d^2 / 2; G's loss
    (g - d)^2 / 2, its penalty weight * g^2 / 2. model_state counts D's updates."""
    def critic(d, g, count, batch, rng, regularise):
        penalty = weight * d**2 / 2 if regularise else jnp.zeros(())
        return adversarial.Terms(d * jnp.mean(batch["x"]), penalty,
                                 {"seen": jnp.mean(batch["x"])}, count + 1)

    def generator(g, d, count, batch, rng, regularise):
        penalty = weight * g**2 / 2 if regularise else jnp.zeros(())
        return adversarial.Terms((g - d) ** 2 / 2, penalty, {}, count)

    return adversarial.Game(critic, generator, n_critic=n_critic, critic_every=critic_every,
                            generator_every=generator_every, clip=clip)


def run(game, steps, batch, g=1.0, d=2.0):
    opt = optax.sgd(LR)
    optim = config_lib.base_config().optim
    optim.ema_decay = 0.5
    state = adversarial.init_state(jnp.float32(g), jnp.float32(d), opt, opt, True, jnp.int32(0))
    step = jax.jit(adversarial.train_step_of(game, opt, opt, optim))
    history = []
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.key(i))
        history.append((float(state.params["g"]), float(state.params["d"]), metrics))
    return state, history


def test_each_critic_update_sees_its_own_slice_then_g_answers_the_last_critic():
    batch = {"x": jnp.arange(6.0)}  # slices of every 3rd row: [0, 3], [1, 4], [2, 5]
    state, [(g, d, metrics)] = run(toy_game(n_critic=3, weight=0.0), 1, batch)
    expected_d = 2.0 - LR * (1.5 + 2.5 + 3.5)
    assert d == pytest.approx(expected_d)
    assert float(metrics["seen"]) == pytest.approx(2.5)  # the mean over the three updates
    assert g == pytest.approx(1.0 - LR * (1.0 - expected_d))
    assert int(state.model_state) == 3
    assert float(state.ema_params["g"]) == pytest.approx(0.5 * 1.0 + 0.5 * g)


def test_lazy_regularisers_act_every_k_steps_weighted_k_times():
    batch = {"x": jnp.zeros(2)}
    k, w = 3, 0.25
    _, history = run(toy_game(critic_every=k, generator_every=k, weight=w), 4, batch)
    d, g = 2.0, 1.0
    for i, (g_i, d_i, metrics) in enumerate(history):
        due = i % k == 0
        d = d - LR * (k * w * d if due else 0.0)
        g = g - LR * ((g - d) + (k * w * g if due else 0.0))
        assert (d_i, g_i) == (pytest.approx(d), pytest.approx(g)), i


def test_clipping_bounds_the_critic_and_a_non_finite_step_is_skipped():
    _, [(_, d, _)] = run(toy_game(clip=0.1), 1, {"x": jnp.ones(2)})
    assert d == pytest.approx(0.1)
    state, [(g, d, metrics)] = run(toy_game(), 1, {"x": jnp.array([1.0, np.nan])})
    assert (g, d, float(metrics["skipped"])) == (1.0, 2.0, 1.0)
    assert int(state.step) == 0 and int(state.model_state) == 0
