"""The bad-input catalogue: each row of the reliability probe (rows 1-70, see experiments/README.md
'Bad inputs') and a few it missed (71-) as a command line, the fragment of what it must say, and
its exit status. A refused command exits 2 with one line on stderr, no traceback, and leaves its
directory (workdir, data, config files) byte-for-byte as it was; a valid or recovered one exits 0.

Every case runs in-process through jaxgen.main.main. Those that need a trained run work on a copy
of one module-scoped smoke run (checkpoints 3 and 6).
"""
import dataclasses
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxgen import checkpoint
from jaxgen.main import main

ROOT = Path(__file__).resolve().parent.parent
SMOKE = "vae_digits.py:smoke"
FALLBACK = "restored checkpoint 3, the newest intact one; skipped checkpoint 6 ("


@dataclasses.dataclass(frozen=True)
class Case:
    """One command line. In `args`, {tmp} is the case's own directory; the command gets
    --config configs/<config> and --workdir {tmp}/run unless `args` gives them."""

    row: int
    args: tuple[str, ...]
    needle: str  # in the one error line (exit 2), or in the output (exit 0)
    code: int = 2
    config: str = SMOKE
    trained: bool = False  # {tmp}/run starts as a copy of the smoke run, else it does not exist
    prepare: Callable[[Path], None] | None = None  # makes what the case needs in {tmp}
    read_only: bool = False  # {tmp}/run is bind-mounted read-only (after `prepare`)


# -- what the cases prepare -----------------------------------------------------------------------


def _write_config(body: str) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        (tmp / "config.py").write_text(body)
    return prepare


def _gray(n: int, size: tuple[int, int] = (8, 8), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size), dtype=np.uint8)


def _folder(sizes: tuple[tuple[int, int], ...] = ((8, 8),) * 20, extra: dict | None = None,
            edit: Callable[[Path], None] | None = None) -> Callable[[Path], None]:
    """A folder {tmp}/images of PNGs of `sizes`, with `extra` files {name: bytes} and `edit`
    applied to its first PNG."""
    def prepare(tmp: Path) -> None:
        (tmp / "images").mkdir()
        for i, size in enumerate(sizes):
            Image.fromarray(_gray(1, size, seed=i)[0]).save(tmp / "images" / f"{i:02d}.png")
        for name, data in (extra or {}).items():
            (tmp / "images" / name).write_bytes(data)
        if edit is not None:
            edit(tmp / "images" / "00.png")
    return prepare


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_in_idat(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 8
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _npz(**arrays: np.ndarray) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        np.savez(tmp / "data.npz", **arrays)
    return prepare


def _write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        (tmp / name).write_bytes(data)
    return prepare


def _npy(tmp: Path) -> None:
    np.save(tmp / "data.npy", _gray(50))


def _a_file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a directory")


def _empty_dirs(*names: str) -> Callable[[Path], None]:
    def prepare(tmp: Path) -> None:
        for name in names:
            (tmp / name).mkdir()
    return prepare


def _largest_array_file(tmp: Path) -> Path:
    files = (tmp / "run" / "checkpoints" / "6" / "state" / "ocdbt.process_0" / "d").iterdir()
    return max(files, key=lambda p: p.stat().st_size)


def _damage(how: Callable[[Path], None], where: Callable[[Path], Path]) -> Callable[[Path], None]:
    """Applies `how` to the file `where` finds in the smoke run's checkpoint 6."""
    return lambda tmp: how(where(tmp))


def _xor_400_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 - 200
    data[middle: middle + 400] = bytes(b ^ 0x5A for b in data[middle: middle + 400])
    path.write_bytes(bytes(data))


def _in_step6(relpath: str) -> Callable[[Path], Path]:
    return lambda tmp: tmp / "run" / "checkpoints" / "6" / relpath


def _eval_then_other_model(tmp: Path) -> None:
    """Row 53's command, on the empty workdir row 55 then trains in."""
    (tmp / "run").mkdir()
    assert main(["--config", str(ROOT / "configs" / SMOKE), "--workdir", str(tmp / "run"),
                 "--mode", "eval"]) == 2


def _set_aside_before(tmp: Path) -> None:
    """Checkpoint 6 damaged, and an earlier damaged 6 already set aside as 6.damaged."""
    steps = tmp / "run" / "checkpoints"
    shutil.copytree(steps / "6", steps / ("6" + checkpoint.DAMAGED))
    _xor_400_bytes(_largest_array_file(tmp))


IMAGES = _gray(50)
NPZ = "--config.data.name=npz:{tmp}/data.npz"
FOLDER = "--config.data.name=folder:{tmp}/images"
DIGITS = "--config.data.name=digits"
RESTORE_FAILS = ("(the checkpoint is left untouched). Since the run was made, the config "
                 "changed in ")

CASES = [
    Case(1, ("--config", "configs/nope.py"), "config file 'configs/nope.py' not found"),
    Case(2, ("--config", "{tmp}/config.py"), "is not valid Python: expected ':' (line 1)",
         prepare=_write_config("def get_config(variant=None)\n    return None\n")),
    Case(3, ("--config", "README.md"), "config file 'README.md' is not a .py file"),
    Case(4, ("--config", "{tmp}/config.py"),
         "get_config(None) raised ZeroDivisionError: division by zero (line 2: return 1/0)",
         prepare=_write_config("def get_config(variant=None):\n    return 1/0\n")),
    Case(5, ("--config", "configs/vae_digits.py:bogus"),
         "has no variant 'bogus': unknown variant 'bogus'; available: smoke"),
    Case(6, ("--config.train.stepz=5",), "unknown config key 'train.stepz'; valid keys here: "),
    Case(7, ("--config.trian.steps=5",), "unknown config key 'trian' in --config.trian.steps"),
    Case(8, ("--config.train.steps=abc",), "--config.train.steps='abc' is not a valid int"),
    Case(9, ("--config.train.steps=-5",), "train.steps must be a positive integer, not -5"),
    Case(10, ("--config.train.steps=0",), "train.steps must be a positive integer, not 0"),
    Case(11, ("--config.train.batch_size=0",), "train.batch_size must be a positive integer"),
    Case(12, ("--config.train.batch_size=-16",), "train.batch_size must be a positive integer"),
    Case(13, ("--config.train.checkpoint_every=0",), "train.checkpoint_every must be a positive"),
    Case(14, ("--config.train.log_every=0",), "train.log_every must be a positive integer"),
    Case(15, ("--config.optim.learning_rate=fast",), "learning_rate='fast' is not a valid float"),
    Case(16, ("--config.train.steps=True",), "train.steps must be of type int, not 'True'"),
    Case(17, ("--config.train.steps", "5"), "unrecognised argument '--config.train.steps'"),
    Case(18, ("--config.train.num_devices=2", "--config.train.batch_size=15"),
         "train.batch_size 15 must be a multiple of the number of devices (2)"),
    Case(19, ("--config.train.num_devices=9",), "train.num_devices=9 but only 8 devices"),
    Case(20, ("--config.train.num_devices=2", "--config.eval.batch_size=15"),
         "eval.batch_size 15 must be a multiple of the number of devices (2)"),
    Case(21, ("--config.train.batch_size=5000",),
         "train.batch_size 5000 is larger than the training split (1497 images)"),
    Case(22, ("--config.data.name=mnsit", "--config.data.cache_dir="),
         "unknown dataset 'mnsit': it is not a TFDS dataset"),
    Case(23, ("--config.data.name=fashion_mnist", "--config.data.data_dir={tmp}/tfds",
              "--config.data.cache_dir={tmp}/cache"),
         "dataset 'fashion_mnist' is not in TFDS data dir", prepare=_empty_dirs("tfds")),
    Case(24, (FOLDER,), "holds no .png/.jpg/.jpeg/.bmp/.pgm/.ppm files", prepare=_empty_dirs("images")),
    Case(25, (FOLDER,), "all images of a folder source must have the same size",
         prepare=_folder(((8, 8),) * 10 + ((12, 12),) * 10)),
    Case(26, (FOLDER,), "cannot read image", prepare=_folder(edit=_truncate)),
    Case(27, (FOLDER,), "cannot read image", prepare=_folder(edit=_flip_in_idat)),
    Case(28, (FOLDER,), "cannot read image",
         prepare=_folder(extra={"notes.png": b"just some text\n"})),
    Case(29, (FOLDER,), "holds no .png/.jpg/.jpeg/.bmp/.pgm/.ppm files",
         prepare=_folder((), extra={"a.txt": b"text", "b.csv": b"1,2\n"})),
    Case(30, ("--config.data.name=folder:{tmp}/nowhere",), "no such directory"),
    Case(31, (NPZ,), "needs 'images'", prepare=_npz(pictures=IMAGES)),
    Case(32, (NPZ,), "got floats outside [0, 1]", prepare=_npz(images=IMAGES * 2.0)),
    Case(33, (NPZ,), "got shape (50, 64)", prepare=_npz(images=IMAGES.reshape(50, 64))),
    Case(34, (NPZ,), "'labels' must hold 50 non-negative integer labels",
         prepare=_npz(images=IMAGES, labels=np.zeros(49, np.int64))),
    Case(35, (NPZ,), "'labels' must hold 50 non-negative integer labels",
         prepare=_npz(images=IMAGES, labels=np.zeros(50, np.float32))),
    Case(36, (NPZ,), "got dtype int64", prepare=_npz(images=IMAGES.astype(np.int64))),
    Case(37, (NPZ,), "got shape (50, 8, 8, 4)",
         prepare=_npz(images=np.repeat(IMAGES[..., None], 4, axis=-1))),
    Case(38, (NPZ,), "is not a NumPy .npz archive",
         prepare=_write_bytes("data.npz", bytes(range(256)) * 4)),
    Case(39, ("--config.data.name=npz:{tmp}/data.npy",), "is not a NumPy .npz archive",
         prepare=_npy),
    Case(40, (NPZ,), "'train_images' holds no images",
         prepare=_npz(train_images=np.zeros((0, 8, 8, 1), np.uint8), test_images=IMAGES)),
    Case(41, (NPZ,), "has 5 images, too few for a 'test' split", prepare=_npz(images=IMAGES[:5])),
    Case(42, (NPZ,), "no such file"),
    Case(43, ("--workdir", "{tmp}/afile"), "is a file, not a directory", prepare=_a_file),
    Case(44, ("--workdir", "{tmp}/afile/sub"), "is under a file", prepare=_a_file),
    Case(45, (), "is not writable", prepare=_empty_dirs("run"), read_only=True),
    Case(46, (), "is not writable", trained=True, read_only=True),
    Case(47, ("--mode", "eval"), "is not writable", trained=True, read_only=True),
    Case(48, ("--config.model.hidden=(128, 128)",), "holds a run of a different model (model "
         "differs: model.hidden saved [256, 256], now [128, 128]). Use a new", trained=True),
    Case(49, ("--config.data.space=unit",), "needs data.space binarize or threshold, not 'unit'",
         trained=True),
    Case(50, ("--config.data.space=threshold",), "different model (data.space differs: "
         "data.space saved 'binarize', now 'threshold')", trained=True),
    Case(51, ("--config.optim.name=sgd",), RESTORE_FAILS + "optim.name saved 'adam', now 'sgd':",
         trained=True),
    Case(52, ("--config.optim.ema_decay=0.999",),
         RESTORE_FAILS + "optim.ema_decay saved 0.0, now 0.999:", trained=True),
    Case(53, ("--mode", "eval"), "no checkpoint in", prepare=_empty_dirs("run")),
    Case(54, ("--mode", "sample"), "no checkpoint in", prepare=_empty_dirs("run")),
    Case(55, ("--config.model.latent_dim=4", "--config.train.steps=1"),
         "compiled and ran the first train step", code=0, prepare=_eval_then_other_model),
    Case(56, (), FALLBACK, code=0, trained=True, prepare=_damage(_truncate, _largest_array_file)),
    Case(57, (), FALLBACK, code=0, trained=True, prepare=_damage(os.remove, _largest_array_file)),
    Case(58, (), FALLBACK, code=0, trained=True,
         prepare=_damage(_xor_400_bytes, _largest_array_file)),
    Case(59, (), FALLBACK, code=0, trained=True,
         prepare=_damage(os.remove, _in_step6("state/_METADATA"))),
    Case(60, (), FALLBACK, code=0, trained=True,
         prepare=_damage(os.remove, _in_step6("_CHECKPOINT_METADATA"))),
    Case(61, (), FALLBACK, code=0, trained=True,
         prepare=_damage(os.remove, _in_step6("data/metadata"))),
    Case(62, (), FALLBACK, code=0, trained=True,
         prepare=_damage(lambda p: p.write_bytes(b""), _in_step6("state/manifest.ocdbt"))),
    Case(63, ("--mode", "predict"), "argument --mode: invalid choice: 'predict'"),
    Case(64, ("--config.data.data_dir=123",), "data.data_dir must be a path, not 123"),
    Case(65, ("--config.data.space=foo",), "needs data.space binarize or threshold, not 'foo'"),
    Case(66, ("--config.model.hidden=(256,'a')",), "takes a tuple of integers"),
    Case(67, ("--config.data.eval_split=validation",), "unknown split 'validation'"),
    Case(68, ("--config", "configs"), "config file 'configs' is a directory"),
    Case(69, ("--config.optim.name=adamax",), "unknown optim.name 'adamax'"),
    Case(70, ("--config.model.family=vea",), "unknown model.family 'vea'"),
    # Beyond the probe.
    Case(71, ("--config.eval.num_samples=-1",), "eval.num_samples must be an integer >= 0"),
    Case(72, ("--config.eval.feature_workdir={tmp}/nowhere",),
         "eval.feature_workdir '{tmp}/nowhere' holds no config.json"),
    Case(73, ("--config.model.arch=conv", "--config.model.hidden=(8, 8, 8, 8)"),
         "divisible by 16"),
    Case(74, ("stray",), "unrecognised argument 'stray'"),
    Case(75, ("--config.seed=-1",), "seed must be an integer >= 0, not -1"),
    Case(76, ("--config.seed=18446744073709551616",), "seed must be below 2**63"),
    Case(77, (), FALLBACK, code=0, trained=True, prepare=_set_aside_before),
    Case(78, ("--config", "{tmp}/config.py"), "get_config(None) returned a NoneType, not a "
         "ConfigDict", prepare=_write_config("def get_config(variant=None):\n    pass\n")),
    Case(79, ("--config", "{tmp}/config.py"), "failed to load: ModuleNotFoundError: No module "
         "named 'jaxgen.nope' (line 1: import jaxgen.nope)",
         prepare=_write_config("import jaxgen.nope\n")),
    Case(80, (NPZ,), "nice couples pairs of values: H x W x C must be even, the images are 7x7x1",
         config="nice_mnist.py:smoke", prepare=_npz(images=_gray(50, (7, 7)))),
    Case(81, ("--config.optim.learning_rate=-0.001",),
         "optim.learning_rate must be positive, not -0.001"),
    Case(82, ("--config.optim_d.learning_rate=0",), "optim_d.learning_rate must be positive",
         config="gan_mnist.py:smoke"),
    Case(83, ("--config", "{tmp}/config.py"), "get_config(None) raised KeyError: 'widht' (line 3: "
         "return dict()['widht'])", prepare=_write_config("def get_config(variant=None):\n"
                                                     "    # a typo in the user's own code\n"
                                                     "    return dict()['widht']\n")),
    Case(84, (FOLDER, "--config.data.task=paired"),
         "the images of 'folder:{tmp}/images' are 9 pixels wide: crop or pad them to an even",
         config="pix2pix_mnist.py:smoke", prepare=_folder(((8, 9),) * 20)),
    Case(85, (DIGITS, "--config.data.task="), "pix2pix translates a condition image into the "
         "image, and this data has none: set --config.data.task", config="pix2pix_mnist.py:smoke"),
    Case(86, (DIGITS,), "data.task colorize turns colour images gray, and 'digits' images have 1",
         config="pix2pix_cifar10.py:smoke"),
    Case(87, (DIGITS, "--config.data.task=sketch"), "unknown data.task 'sketch'; use one of",
         config="pix2pix_mnist.py:smoke"),
    Case(88, (DIGITS, "--config.model.depth=4"), "the images are 8x8 and model.depth is 4",
         config="pix2pix_mnist.py:smoke"),
    Case(89, ("--mode", "translate", "--input", "{tmp}"),
         "--input DIR and --output DIR go together, with --mode translate only"),
    Case(90, ("--mode", "translate", "--input", "{tmp}", "--output", "{tmp}/out"),
         "model.family 'vae' translates no images; --mode translate needs a pix2pix run",
         trained=True),
]


# -- running them ---------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, str] | None:
    """{relpath: sha256 of a file, or 'dir'} of everything under root; None if root is absent."""
    if not os.path.lexists(root):
        return None
    tree = {}
    for d, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(d, name), root)] = "dir"
        for name in files:
            path = os.path.join(d, name)
            tree[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return tree


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["--config", str(ROOT / "configs" / SMOKE), "--workdir", str(workdir)]) == 0
    return workdir


def _mount_read_only(path: Path) -> None:
    """Bind-mounts path read-only onto itself (root only: chmod does not stop root)."""
    def skip(done: subprocess.CompletedProcess) -> None:
        pytest.skip(f"cannot bind-mount a read-only workdir here ({done.stderr.strip()}); "
                    f"it needs root")

    bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True,
                          text=True)
    if bind.returncode:
        skip(bind)
    read_only = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)],
                               capture_output=True, text=True)
    if read_only.returncode:
        subprocess.run(["umount", str(path)], check=True)
        skip(read_only)


def _command(case: Case, tmp: Path) -> list[str]:
    args = [a.format(tmp=tmp) for a in case.args]
    if "--config" not in args:
        args = ["--config", str(ROOT / "configs" / case.config), *args]
    if "--workdir" not in args:
        args += ["--workdir", str(tmp / "run")]
    return args


@pytest.mark.parametrize("case", CASES, ids=[f"row{c.row:02d}" for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, request, capfd, monkeypatch):
    monkeypatch.chdir(ROOT)  # the probe's relative paths: configs/nope.py, README.md
    if case.trained:
        shutil.copytree(request.getfixturevalue("smoke_run"), tmp_path / "run")
    if case.prepare is not None:
        case.prepare(tmp_path)
    if case.read_only:
        _mount_read_only(tmp_path / "run")
    capfd.readouterr()
    before = snapshot(tmp_path)
    try:
        code = main(_command(case, tmp_path))
    finally:
        if case.read_only:
            subprocess.run(["umount", str(tmp_path / "run")], check=True)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, err
    assert code == case.code, err
    needle = case.needle.format(tmp=tmp_path)
    if case.code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
        assert snapshot(tmp_path) == before
    else:
        assert needle in out + err, out + err
        if case.trained:
            _check_set_aside(tmp_path, before)


def _under(tree: dict[str, str], folder: str) -> dict[str, str]:
    """The entries of a snapshot inside `folder`, relative to it."""
    return {k[len(folder) + 1:]: v for k, v in tree.items() if k.startswith(folder + "/")}


def _check_set_aside(tmp: Path, before: dict[str, str]) -> None:
    """A fallback resume kept the damaged checkpoint 6 byte-for-byte as a <step>.damaged
    folder, left every other checkpoint folder as it was, and saved an intact 6 again."""
    steps = "run/checkpoints"
    after = snapshot(tmp)
    set_aside = [_under(after, f"{steps}/{name}") for name in os.listdir(tmp / steps)
                 if name.startswith("6" + checkpoint.DAMAGED)]
    assert _under(before, f"{steps}/6") in set_aside
    others = {k: v for k, v in before.items()
              if k.startswith(steps + "/") and k != f"{steps}/6"
              and not k.startswith(f"{steps}/6/")}
    assert others.items() <= after.items()
    assert checkpoint.damage(str(tmp / steps / "6")) is None and (tmp / steps / "6").is_dir()
