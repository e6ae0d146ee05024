"""The package map of ``masr/__init__.py`` is true: every package is listed, imports only go down
the layers, and a module over 500 lines says at its top why it is long."""

import ast
import os
import re

import masr

ROOT = os.path.dirname(masr.__file__)
LONG_MODULE_LINES = 500


def layers():
    """Package names of the docstring's map, one set per line (lower layers first)."""
    found = []
    for line in masr.__doc__.splitlines():
        m = re.match(r"- ((?:``masr\.\w+``(?:, )?)+)", line.strip())
        if m:
            found.append(set(re.findall(r"``masr\.(\w+)``", m.group(1))))
    return found


def modules():
    """(dotted name, path) of every module of the package."""
    for folder, _, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def imported(path):
    """Every ``masr.*`` module imported by a file, at its top or inside functions."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("masr."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "masr":
                yield from (f"masr.{a.name}" for a in node.names)
            elif node.module.startswith("masr."):
                yield node.module


def top(module):
    return module.split(".")[1] if module.count(".") else None


def test_the_package_map_lists_every_package_once():
    listed = [name for layer in layers() for name in layer]
    present = {top(name) for name, _ in modules() if top(name)}
    assert len(listed) == len(set(listed)), listed
    assert set(listed) == present, (sorted(present - set(listed)), sorted(set(listed) - present))


def test_imports_only_go_down_the_layers():
    rank = {name: i for i, layer in enumerate(layers()) for name in layer}
    upward = []
    for module, path in modules():
        if top(module) is None:
            continue
        for target in imported(path):
            if target != "masr" and rank[top(target)] > rank[top(module)]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_a_long_module_says_why_at_its_top():
    unexplained = []
    for module, path in modules():
        text = open(path, encoding="utf-8").read()
        reason = "Why this module is long:" in (ast.get_docstring(ast.parse(text)) or "")
        if text.count("\n") > LONG_MODULE_LINES and not reason:
            unexplained.append(f"{module}: {text.count(chr(10))} lines")
    assert unexplained == []
