"""One module per family; each has make_family(config, spec) -> Family."""
import importlib

from jaxgen.errors import UserError
from jaxgen.models.base import DataSpec, Family

FAMILIES = ("gaussian", "autoencoder", "vae", "classifier", "flows", "gan", "diffusion", "pixelcnn",
            "vqvae", "vqprior")


def make(config, spec: DataSpec) -> Family:
    name = config.model.family
    if name not in FAMILIES:
        raise UserError(f"unknown model.family {name!r}; available: {', '.join(FAMILIES)}")
    return importlib.import_module(f"jaxgen.models.{name}").make_family(config, spec)
