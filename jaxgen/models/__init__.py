"""One module per family; each has make_family(config, spec) -> Family and DECLARATION (a
base.Declaration: its default config block, model space and labels).

A family whose model reads other trained runs (a VQ prior's first stage) declares them in
INPUT_RUNS = {model key: (the input run's family, the config that trains one)}; the loop loads
them (jaxgen.runs) and its make_family(config, spec, inputs) gets {model key: Run}.
"""
import importlib

from jaxgen.errors import UserError
from jaxgen.models.base import DataSpec, Declaration, Family, Run

FAMILIES = ("gaussian", "gmm", "texture", "autoencoder", "vae", "nvae", "classifier", "flows",
            "gan", "stylegan2", "pix2pix", "diffusion", "pixelcnn", "vqvae", "vqprior")


def _module(name: str):
    if name not in FAMILIES:
        raise UserError(f"unknown model.family {name!r}; available: {', '.join(FAMILIES)}")
    return importlib.import_module(f"jaxgen.models.{name}")


def input_runs(config) -> dict[str, tuple[str, str]]:
    """{model key: (family, hint)} of the trained runs config's family reads."""
    return getattr(_module(config.model.family), "INPUT_RUNS", {})


def declaration(family: str) -> Declaration:
    """What `family` declares of itself: its defaults, model space and labels."""
    return _module(family).DECLARATION


def make(config, spec: DataSpec, inputs: dict[str, Run] | None = None) -> Family:
    module = _module(config.model.family)
    module.DECLARATION.check(config, spec)
    if hasattr(module, "INPUT_RUNS"):
        return module.make_family(config, spec, inputs or {})
    return module.make_family(config, spec)
