"""jaxgen: deep generative image models in functional JAX/Flax, trained from a config."""
__version__ = "0.1.0"
