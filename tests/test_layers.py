"""The import layers: a module imports only from its own layer or below, and no model family
imports another family's module (shared pieces live in nn/, losses.py or data/)."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxgen"
# Bottom first; a module belongs to the layer of its longest listed prefix.
LAYERS = [
    ("jaxgen.errors", "jaxgen.allocator", "jaxgen.models.base"),
    ("jaxgen.nn", "jaxgen.losses", "jaxgen.metrics", "jaxgen.data", "jaxgen.viz",
     "jaxgen.checkpoint", "jaxgen.writers", "jaxgen.sharding", "jaxgen.config"),
    ("jaxgen.models",),
    ("jaxgen.evaluation", "jaxgen.generation", "jaxgen.runs", "jaxgen.presets"),
    ("jaxgen.train",),
    ("jaxgen.main",),
]
# What families share in models/: the contract, and the adversarial core the GANs build on.
SHARED = ("jaxgen.models.base", "jaxgen.models.adversarial")


def package_sources() -> dict[str, str]:
    """{dotted module name: source} of every module in the package."""
    sources = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        sources[name] = path.read_text()
    return sources


def layer_of(module: str) -> int | None:
    matches = [(len(prefix), i) for i, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches)[1] if matches else None


def imports_of(source: str, modules: set[str]) -> set[str]:
    """The jaxgen modules `source` imports, at any depth of the code (late imports included)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jaxgen")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxgen"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def is_family(module: str) -> bool:
    return module.startswith("jaxgen.models.") and module not in SHARED


def violations(sources: dict[str, str]) -> list[str]:
    modules = set(sources)
    bad = []
    for module, source in sorted(sources.items()):
        own = layer_of(module)
        if own is None and module != "jaxgen":
            bad.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for target in sorted(imports_of(source, modules)):
            if target == "jaxgen" or target == module:
                continue
            if layer_of(target) > (own if own is not None else -1):
                bad.append(f"{module} imports {target}, a layer above it")
            elif is_family(module) and target.startswith("jaxgen.models") \
                    and target not in SHARED:
                bad.append(f"family {module} imports {target}: move what it shares to nn/ "
                           f"or losses.py")
    return bad


def test_no_module_imports_a_layer_above_or_another_family():
    assert violations(package_sources()) == []


def test_a_back_import_or_a_cross_family_import_is_caught():
    sources = package_sources()
    late = dict(sources)
    late["jaxgen.models.vae"] += "\n\ndef f():\n    from jaxgen import train\n"
    assert violations(late) == ["jaxgen.models.vae imports jaxgen.train, a layer above it"]
    cross = dict(sources)
    cross["jaxgen.models.diffusion"] += "\nfrom jaxgen.models.classifier import make_embed\n"
    assert violations(cross) == ["family jaxgen.models.diffusion imports "
                                 "jaxgen.models.classifier: move what it shares to nn/ or "
                                 "losses.py"]
