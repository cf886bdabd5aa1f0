"""Config files, command-line overrides and the copy saved in the workdir."""
import ast
import importlib.util
import json
import os
import traceback

import ml_collections

from jaxgen.errors import UnknownVariant, UserError

ConfigDict = ml_collections.ConfigDict

# The parts of a config that fix the shapes of a checkpoint, or what its arrays mean: a resume
# must agree on the keys both configs have (check_resumable).
STATE_DEFINING = ("model", "data.space", "data.name", "data.task")
# Model keys that set how a trained model samples, not what it learned: free to change later.
SAMPLING_KEYS = ("sampler", "sample_steps", "eta", "guidance_scale", "clip_denoised",
                 "temperature", "picture_temperature", "synthesis", "sample_size",
                 "sample_residual", "truncation_psi")
# Model keys that say where an input run lives: its weights are in the checkpoint, so it may move.
LOCATION_KEYS = ("first_stage",)


def load(spec: str) -> ConfigDict:
    """'configs/vae_mnist.py[:variant]' -> the ConfigDict its get_config(variant) returns."""
    path, _, variant = spec.partition(":")
    if os.path.isdir(path):
        raise UserError(f"config file {path!r} is a directory; pass --config "
                        f"configs/<name>.py[:variant]")
    if not os.path.isfile(path):
        raise UserError(f"config file {path!r} not found; pass --config configs/<name>.py[:variant]")
    if not path.endswith(".py"):
        raise UserError(f"config file {path!r} is not a .py file; pass --config "
                        f"configs/<name>.py[:variant]")
    module_spec = importlib.util.spec_from_file_location("jaxgen_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(f"{path} is not valid Python: {e.msg} (line {e.lineno})") from None
    except Exception as e:  # the user's own code failed: say where, in one line
        raise UserError(f"{path} failed to load: {_where(e, path)}") from None
    if not hasattr(module, "get_config"):
        raise UserError(f"{path} defines no get_config()")
    try:
        config = module.get_config(variant or None)
    except UnknownVariant as e:
        raise UserError(f"{path} has no variant {variant!r}: {e.args[0] if e.args else e}"
                        ) from None
    except Exception as e:
        raise UserError(f"{path}: get_config({variant or None!r}) raised {_where(e, path)}"
                        ) from None
    if not isinstance(config, ConfigDict):
        raise UserError(f"{path}: get_config({variant or None!r}) returned a "
                        f"{type(config).__name__}, not a ConfigDict (start from base_config())")
    return config


def _where(error: Exception, path: str) -> str:
    """'ZeroDivisionError: division by zero (line 2: return 1/0)': the error and the line of
    the config file it came from (the innermost one, if the traceback passes through it)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"{type(error).__name__}: {error}{where}"


def override(config: ConfigDict, key: str, text: str) -> None:
    """Sets dotted `key` (e.g. 'train.steps') from its command-line text, keeping the value's type."""
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
        if part not in node or not isinstance(node[part], ConfigDict):
            raise UserError(f"unknown config key {'.'.join(parents[: i + 1])!r} in --config.{key}")
        node = node[part]
    if leaf not in node:
        raise UserError(
            f"unknown config key {key!r}; valid keys here: {', '.join(sorted(node.keys()))}"
        )
    old = node[leaf]
    node[leaf] = _parse(text, old, key)


def _parse(text: str, old, key: str):
    if isinstance(old, str):
        return text
    if isinstance(old, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UserError(f"--config.{key} takes true or false, not {text!r}")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if old is None:
            return text
        raise UserError(f"--config.{key}={text!r} is not a valid {type(old).__name__}") from None
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if old is not None and (not isinstance(value, type(old)) or isinstance(value, bool)):
        raise UserError(f"--config.{key} must be of type {type(old).__name__}, not {text!r}")
    if isinstance(old, tuple) and old and all(_is_int(v) for v in old) \
            and not all(_is_int(v) for v in value):
        raise UserError(f"--config.{key} takes a tuple of integers, not {text!r}")
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The loop's numbers: (key, smallest value). Checked once, after the overrides.
COUNTS = (("seed", 0), ("train.steps", 1), ("train.batch_size", 1), ("train.log_every", 1),
          ("train.checkpoint_every", 1), ("train.eval_every", 1), ("train.sample_every", 1),
          ("train.keep_checkpoints", 1), ("train.num_devices", 0), ("train.shard_min_size", 0),
          ("eval.batch_size", 1), ("eval.num_examples", 0), ("eval.num_samples", 0),
          ("eval.sample_grid", 1), ("eval.picture_examples", 0), ("optim.warmup_steps", 0),
          ("optim.decay_steps", 0))


def check_values(config: ConfigDict) -> None:
    """Raises a UserError for a count of the loop (or the seed) that is not an integer at least
    its minimum, a learning rate that is not positive, and a data.data_dir that is not a path."""
    for key, least in COUNTS:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {})
        if leaf not in node:
            continue
        value = node[leaf]
        if not _is_int(value) or value < least:
            need = "a positive integer" if least == 1 else "an integer >= 0"
            raise UserError(f"{key} must be {need}, not {value!r}; set --config.{key}=N")
    for section in ("optim", "optim_d"):  # optim_d: a GAN's critic
        rate = config.get(section, {}).get("learning_rate", 1.0)
        if not rate > 0:
            raise UserError(f"{section}.learning_rate must be positive, not {rate!r}; set "
                            f"--config.{section}.learning_rate=X")
    if config.get("seed", 0) >= 2**63:  # what a PRNG key takes
        raise UserError(f"seed must be below 2**63, not {config.seed}; set --config.seed=N")
    data_dir = config.data.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise UserError(f"data.data_dir must be a path, not {data_dir!r}")


def to_json(config: ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part, {}) if isinstance(tree, dict) else {}
    return tree


def check_resumable(saved_json: str, config: ConfigDict, workdir: str) -> None:
    """Raises a UserError when the workdir's saved config trains a different model: a key of
    STATE_DEFINING that both configs have differs. A key only one of them has (an option added
    to jaxgen after the run was saved, or one removed since) is not judged here, whatever its
    value: the checkpoint's tree of shapes is, at the restore (checkpoint.Mismatch)."""
    saved = json.loads(saved_json)
    current = json.loads(to_json(config))
    for key in STATE_DEFINING:
        before, now = _state_part(saved, key), _state_part(current, key)
        if before == {} or now == {}:  # a key one of them lacks (data.task, before it existed)
            continue
        if isinstance(before, dict) and isinstance(now, dict):
            both = before.keys() & now.keys()
            before, now = ({k: v for k, v in part.items() if k in both} for part in (before, now))
        if before != now:
            raise UserError(
                f"workdir {workdir} holds a run of a different model ({key} differs: "
                f"{_describe(_flat({key: before}), _flat({key: now}))}). Use a new --workdir, or "
                f"run with the config this workdir was made with (saved in {workdir}/config.json)."
            )


# Keys free to change on a resume whatever the checkpoint holds: the loop's schedule, where the
# data lives.
FREE_TO_CHANGE = ("seed", "train.", "eval.", "data.data_dir", "data.cache_dir")


def changes(saved_json: str, config: ConfigDict) -> str:
    """The keys outside FREE_TO_CHANGE in which config differs from the saved one, in words
    ('' if none): the likely cause of a checkpoint that does not fit."""
    saved, now = ({k: v for k, v in _flat(tree).items() if not k.startswith(FREE_TO_CHANGE)}
                  for tree in (json.loads(saved_json), json.loads(to_json(config))))
    return _describe(saved, now)


def _flat(tree: dict, prefix: str = "") -> dict:
    """{dotted key: value} of the leaves of a JSON tree."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def _describe(before: dict, now: dict) -> str:
    """'model.hidden saved [256, 256], now [128, 128]' for each key whose values differ."""
    def show(tree: dict, key: str) -> str:
        return repr(tree[key]) if key in tree else "unset"

    return "; ".join(f"{k} saved {show(before, k)}, now {show(now, k)}"
                     for k in sorted(before.keys() | now.keys())
                     if k not in before or k not in now or before[k] != now[k])


def _state_part(tree: dict, key: str):
    value = _get(tree, key)
    if key == "model" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in SAMPLING_KEYS + LOCATION_KEYS}
    return value


def base_config() -> ConfigDict:
    """Every key the loop reads, with defaults; config files fill in data and model."""
    c = ConfigDict()
    c.seed = 0
    c.data = ConfigDict(dict(
        name="digits",  # a TFDS name, 'digits' (embedded), 'image:FILE', 'folder:DIR', 'npz:FILE'
        data_dir=None,  # TFDS data dir (None: TFDS_DATA_DIR or TFDS's default)
        cache_dir=os.path.expanduser("~/.cache/jaxgen"),  # decoded TFDS splits; '' to disable
        train_split="train",
        eval_split="test",
        space="unit",  # model space: unit, symmetric, binarize, threshold, dequantize
        task="",  # paired images for translation (jaxgen.data.tasks): colorize, inpaint, ...
    ))
    c.model = ConfigDict()
    c.optim = ConfigDict(dict(
        name="adam", learning_rate=1e-3, b1=0.9, b2=0.999, weight_decay=0.0,
        schedule="constant", warmup_steps=0, decay_steps=0, grad_clip=0.0, ema_decay=0.0,
        ema_warmup=False,  # EMA decay at most (1 + step) / (10 + step): for short runs
    ))
    c.train = ConfigDict(dict(
        steps=1000, batch_size=128, num_devices=0, shard_min_size=0,
        log_every=100, checkpoint_every=1000, eval_every=1000, sample_every=1000,
        keep_checkpoints=3,
    ))
    c.eval = ConfigDict(dict(
        batch_size=500, num_examples=0,  # 0: the whole eval split
        num_samples=10000, sample_grid=64, picture_examples=1000,
        iwae_samples=1, iwae_chunk=1,
        feature_workdir="",  # a trained classifier run: adds sample metrics to eval ('' = off)
    ))
    return c
