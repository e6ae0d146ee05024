"""pyproject.toml declares what masr/ imports, requirements.txt pins it, console scripts exist.

Reads source files and installed metadata only: nothing is built, installed or downloaded.
"""

import ast
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]

# Declared runtime dependencies that masr needs without importing them itself.
INDIRECT = {
    "setuptools": "lang2vec imports pkg_resources",
    "tensorboard": "torch.utils.tensorboard (masr.train.trainer) imports it",
}
# Extras for tools outside masr/ (tests, benchmarks): their packages are not imported by masr.
NON_RUNTIME_EXTRAS = {"dev", "bench"}
# requirements.txt lines kept as a range rather than an exact pin (the reason is beside them there).
NOT_PINNED = {"setuptools"}


def normalize(name):
    """PEP 503 distribution name: ``PyYAML`` and ``pyyaml``, ``espeakng_loader`` and
    ``espeakng-loader`` are the same."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement):
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def project():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def runtime_dependencies():
    return {requirement_name(r): r for r in project()["dependencies"]}


def extras():
    return {extra: {requirement_name(r): r for r in reqs}
            for extra, reqs in project().get("optional-dependencies", {}).items()}


def imported_modules(package=ROOT / "masr"):
    """Top-level third-party modules imported anywhere under ``package`` (module level or inside
    functions), each with the files importing it."""
    modules = {}
    for path in sorted(Path(package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "masr" and top not in sys.stdlib_module_names:
                    modules.setdefault(top, set()).add(str(path.relative_to(Path(package).parent)))
    return modules


def distributions_of(module, mapping):
    return {normalize(d) for d in mapping.get(module, [])}


def test_the_import_walk_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "masr"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("import os\nfrom masr import sub\nfrom . import sub\n")
    (package / "sub" / "__init__.py").write_text(
        "import numpy as np, json\n"
        "def f():\n    import safetensors.torch\n    from yaml import safe_load\n"
        "class C:\n    def g(self):\n        try:\n            import huggingface_hub\n"
        "        except ImportError:\n            pass\n")
    assert set(imported_modules(package)) == {"numpy", "safetensors", "yaml", "huggingface_hub"}
    assert {"torch", "numpy", "yaml", "kaldiio"} <= set(imported_modules())


def test_every_imported_module_is_declared():
    declared = set(runtime_dependencies())
    for extra, reqs in extras().items():
        if extra not in NON_RUNTIME_EXTRAS:
            declared |= set(reqs)
    mapping = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(imported_modules().items()):
        dists = distributions_of(module, mapping) or ({normalize(module)} & declared)  # an extra not installed here
        if not dists:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) is not installed, so its "
                            "distribution is unknown: install it and declare it in pyproject.toml")
        elif not dists & declared:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) comes from {sorted(dists)}, "
                            "which pyproject.toml declares neither as a dependency nor in a runtime extra")
    assert not problems, "\n".join(problems)


def test_every_declared_dependency_is_used():
    mapping = importlib.metadata.packages_distributions()
    used = set()
    for module in imported_modules():
        used |= distributions_of(module, mapping) | {normalize(module)}  # | an extra not installed here
    declared = dict(runtime_dependencies())
    for extra, reqs in extras().items():
        if extra not in NON_RUNTIME_EXTRAS:
            declared.update(reqs)
    unused = sorted(name for name in declared if name not in used and name not in INDIRECT)
    assert not unused, (f"declared in pyproject.toml but imported nowhere under masr/: {unused} "
                        "(remove them, or list them in INDIRECT with the reason)")
    assert set(INDIRECT) <= set(runtime_dependencies()), "INDIRECT names a package that is not declared"


def lock(path):
    """``{name: specifier}`` of a requirements file; ``-r`` lines are followed."""
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(lock(Path(path).parent / line[3:].strip()))
            continue
        name = requirement_name(line)
        pins[name] = line[re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*", line).end():].strip()
    return pins


def test_requirements_txt_pins_every_runtime_dependency():
    pins = lock(ROOT / "requirements.txt")
    missing = sorted(set(runtime_dependencies()) - set(pins))
    assert not missing, f"runtime dependencies of pyproject.toml missing from requirements.txt: {missing}"
    loose = sorted(name for name in runtime_dependencies() if name not in NOT_PINNED
                   and not re.fullmatch(r"==\s*[\w.+!-]+", pins[name]))
    assert not loose, f"requirements.txt must pin these with ==: {loose}"
    for name in NOT_PINNED:
        assert pins[name], f"requirements.txt: {name} needs at least a range"


def test_pins_satisfy_the_declared_ranges():
    specifiers = pytest.importorskip("packaging.specifiers")
    declared = dict(runtime_dependencies())
    for reqs in extras().values():
        declared.update(reqs)
    pins = lock(ROOT / "requirements-dev.txt")
    outside = []
    for name, pin in pins.items():
        if name in declared and pin.startswith("=="):
            spec = declared[name][re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*", declared[name]).end():]
            spec = spec.split(";", 1)[0].strip()
            if spec and not specifiers.SpecifierSet(spec).contains(pin[2:].strip(), prereleases=True):
                outside.append(f"{name}{pin} is outside pyproject.toml's {declared[name]}")
    assert not outside, "\n".join(outside)


def test_dev_lock_has_what_the_tests_and_benchmarks_import():
    """requirements-dev.txt (./run.sh --test) installs the runtime set, pytest and the benchmarks'
    own baseline (benchmarks/triplet_mining.py runs in the gpu.sh dry-run test), and nothing
    non-runtime hides in requirements.txt."""
    runtime, dev = lock(ROOT / "requirements.txt"), lock(ROOT / "requirements-dev.txt")
    assert set(runtime) <= set(dev)
    assert {"pytest", "pytorch-metric-learning"} <= set(dev) - set(runtime)
    assert "sox" not in runtime, "sox (the Python package) is not used; the sox binary comes from apt"
    bench = set(extras()["bench"])
    assert "pytorch-metric-learning" in bench and bench <= set(extras()["dev"])


def test_console_scripts_point_at_callables():
    scripts = project().get("scripts", {})
    assert {"masr-infer", "masr-validate", "masr-hub"} <= set(scripts)
    for script, target in scripts.items():
        module_name, _, attribute = target.partition(":")
        assert attribute, f"{script}: {target} names no function"
        module = importlib.import_module(module_name)
        function = getattr(module, attribute, None)
        assert callable(function), f"{script}: {target} is not a callable"
        # sys.exit(main()) is what a console script does: main must take argv=None and return a status
        assert "argv" in function.__code__.co_varnames[:function.__code__.co_argcount], target
        source = Path(module.__file__).read_text(encoding="utf-8")
        assert "sys.exit(main())" in source, f"{module_name} is not run as sys.exit(main()) itself"
