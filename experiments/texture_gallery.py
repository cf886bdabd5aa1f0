"""Every exemplar of the shared texture folder beside its ADSN and RPN syntheses, as small JPEGs.

    python experiments/texture_gallery.py [--textures DIR (default ../shared/data/textures)]
        [--out experiments/figures/textures]

Each exemplar goes through the CLI's pieces: configs/texture.py with data.name = image:FILE, the
image source, the texture family's init and train step (the fit), its sampler at the exemplar's
size for each synthesis (seeded, so reruns draw the same pictures). Rows of (exemplar | ADSN |
RPN) triplets are grouped four to a montage; each JPEG takes the best quality that keeps it
under 100 kB. The default exemplar and a periodic weave (Fabric-13) also get the family's own
eval picture: exemplar, ADSN, RPN at 1x, then ADSN and RPN at 2x.
"""
import argparse
import io
import os

import jax
import numpy as np
from PIL import Image

from jaxgen import config as config_lib, models, runs, viz
from jaxgen.data import pipeline, sources

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                      "texture.py")
MAX_BYTES = 100_000


def fit(path: str):
    """(config, data spec, fitted state) of the exemplar at `path`."""
    config = config_lib.load(CONFIG)
    config.data.name = f"image:{path}"
    data = sources.load_images(config.data.name, config.data.train_split)
    spec = runs.spec_of(data)
    family = models.make(config, spec)
    batch = pipeline.example_batch(data, 1)
    state = family.init(jax.random.key(0), batch)
    state, _ = jax.jit(family.train_step)(state, batch, jax.random.key(0))
    return config, spec, state


def synthesize(config, spec, state, synthesis: str, seed: int) -> np.ndarray:
    """One sample [H, W, C] in [0, 1] of the family's sampler, at the exemplar's size."""
    config = config_lib.ConfigDict(config.to_dict())
    config.model.update(synthesis=synthesis, sample_size=(0, 0))
    sample = jax.jit(models.make(config, spec).sample)
    return np.asarray(sample(state, jax.random.key(seed), np.zeros(1, np.int32))[0])


def save_jpeg(picture: np.ndarray, path: str) -> int:
    """Writes uint8 HWC (C = 1 or 3) at the best quality (95 down to 30) under MAX_BYTES."""
    image = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
    for quality in range(95, 25, -5):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() < MAX_BYTES:
            break
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return quality


def montage(triplets: list[list[np.ndarray]], per_row: int) -> np.ndarray:
    """(exemplar, ADSN, RPN) triplets, `per_row` of them side by side in each row."""
    rows = [sum(triplets[i : i + per_row], []) for i in range(0, len(triplets), per_row)]
    return viz.montage(rows, pad=3)


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", default=None,
                        help="default: the folder above the config's default exemplar")
    parser.add_argument("--out", default=os.path.join(root, "experiments", "figures", "textures"))
    args = parser.parse_args()
    default = config_lib.load(CONFIG).data.name[len("image:"):]
    textures = args.textures or os.path.dirname(os.path.dirname(default))
    os.makedirs(args.out, exist_ok=True)
    # (folder, exemplars per montage, triplets per row, crop): the 256x256 gray ones are shown
    # by their top-left 128x128 quarters, which JPEG keeps sharp under 100 kB four at a time
    groups = [("vistex", 4, 2, None), ("portilla_simoncelli", 4, 2, 128)]
    for folder, per_file, per_row, crop in groups:
        names = sorted(f for f in os.listdir(os.path.join(textures, folder))
                       if f.lower().endswith(sources.IMAGE_EXTENSIONS))
        for part, start in enumerate(range(0, len(names), per_file)):
            triplets = []
            for i, name in enumerate(names[start : start + per_file]):
                config, spec, state = fit(os.path.join(textures, folder, name))
                triplet = [np.asarray(state.model_state["exemplar"])] + [
                    synthesize(config, spec, state, s, seed=start + i) for s in ("adsn", "rpn")]
                triplets.append([im[:crop, :crop] for im in triplet])
            suffix = f"_{part + 1}" if len(names) > per_file else ""
            path = os.path.join(args.out, f"{folder}{suffix}.jpg")
            quality = save_jpeg(montage(triplets, per_row), path)
            print(f"{path}: {', '.join(names[start : start + per_file])} "
                  f"(quality {quality}, {os.path.getsize(path)} bytes)")
    for exemplar in (default, os.path.join(textures, "vistex", "Fabric-13.png")):
        config, spec, state = fit(exemplar)
        picture = models.make(config, spec).pictures(state, {}, jax.random.key(0))["textures"]
        name = os.path.splitext(os.path.basename(exemplar))[0].lower().replace("-", "")
        path = os.path.join(args.out, f"{name}_1x_2x.jpg")
        quality = save_jpeg(picture, path)
        print(f"{path}: {exemplar} (quality {quality}, {os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
