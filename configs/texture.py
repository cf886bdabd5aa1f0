"""Stationary Gaussian textures from one exemplar: RPN (default) or ADSN, Galerne et al. 2011.

The exemplar is `data.name = 'image:/path/to/texture.png'` (gray or RGB, any size); the default
is the VisTex Sand-01 photograph of the shared data folder (`../shared` beside the repository,
or $JAXGEN_SHARED). Training is one step (the periodic component, mean and spot); eval reports
the Fourier-modulus error of RPN samples (float32 rounding on the exemplar) and the ADSN
autocovariance error (Monte-Carlo, about 1/sqrt(model.eval_samples)); every eval writes the
exemplar beside ADSN and RPN at 1x and 2x (samples/textures_*.png). Sample any size with
`--mode sample --config.model.sample_size='(512, 512)' [--config.model.synthesis=adsn]`.
Variants: rpn, adsn, smoke. A 512x512 RGB sample takes 12-14 ms of one CPU core (30-37 ms wall
on the loaded 2-core VM); pictures of all 31 shared exemplars and the commands:
experiments/README.md, "Stationary Gaussian textures".
"""
import os

from jaxgen.presets import family_config, pick_variant

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("JAXGEN_SHARED") or os.path.normpath(os.path.join(REPO, "..", "shared"))
DEFAULT_EXEMPLAR = os.path.join(SHARED, "data", "textures", "vistex", "Sand-01.png")


def get_config(variant=None):
    c = family_config("texture", f"image:{DEFAULT_EXEMPLAR}")
    pick_variant(c, variant, {"rpn": lambda c: c.model.update(synthesis="rpn"),
                              "adsn": lambda c: c.model.update(synthesis="adsn")})
    if "smoke" in (variant or "").split("+"):  # one image, one at a time
        c.model.update(sample_size=(160, 96), eval_samples=4)  # taller, narrower: pad and crop
        c.train.batch_size = c.eval.batch_size = 1
        c.eval.update(num_samples=4, sample_grid=4, picture_examples=1)
    return c
