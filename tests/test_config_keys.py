"""Configs are the single source of truth: every key an egs YAML sets is read by its step, every
key a step reads is declared in each of its YAMLs, and the steps read their configs without
Python-side defaults (``config[key]``; ``config.get`` only for keys no YAML sets, e.g. the
command-line flag ``allow_inexact_resume``).

The keys a step reads are found in its source (``config["key"]`` and ``config.get("key")``) and
must equal its declared ``CONFIG_KEYS``; a YAML may also hold keys it only uses itself through
``!ref <key>`` (``lr`` inside ``optimizer:``), and ``__``-prefixed keys run at load time
(``__set_seed``).
"""

import ast
import glob
import importlib
import os
import re

import pytest
import yaml

from masr.utils.config import ref_keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Keys the run frame sets from the command line, never from a YAML.
COMMAND_LINE_KEYS = {"allow_inexact_resume"}

#: step -> (its module, the modules whose config reads make up its CONFIG_KEYS, its YAMLs)
STEPS = {
    "pretrain": ("masr.train.pretrain", ["masr/train/pretrain.py", "masr/train/run.py"],
                 ["egs/*/conf/pretrain_*.yaml", "egs/*/conf/continue_*.yaml"]),
    "langid": ("masr.downstream.langid", ["masr/downstream/langid.py", "masr/downstream/finetune.py",
                                          "masr/train/run.py"], ["egs/*/conf/langid*.yaml"]),
    "asr": ("masr.downstream.asr", ["masr/downstream/asr.py", "masr/downstream/finetune.py", "masr/train/run.py"],
            ["egs/*/conf/asr*.yaml"]),
    "probe": ("masr.downstream.probe", ["masr/downstream/probe.py"], ["egs/*/conf/probe*.yaml"]),
}


def config_reads(paths):
    """{key: {"[]", "get"}} of every ``config[...]`` / ``config.get(...)``; a read whose key is not a
    literal (``config[name]``) would escape the check, so it fails the test."""
    reads = {}
    for path in paths:
        for node in ast.walk(ast.parse(open(os.path.join(ROOT, path), encoding="utf-8").read(), path)):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "config":
                assert isinstance(node.slice, ast.Constant), f"{path}:{node.lineno}: config[...] with a computed key"
                reads.setdefault(node.slice.value, set()).add("[]")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "config" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                reads.setdefault(node.args[0].value, set()).add("get")
    return reads


class _AnyTag(yaml.SafeLoader):
    """Top-level keys only: HyperPyYAML's tags (``!new:``, ``!ref``, ...) are read as nothing."""


_AnyTag.add_multi_constructor("!", lambda loader, suffix, node: None)


def yaml_keys(path):
    """(top-level keys, keys it refers to with ``!ref <key>``) of a HyperPyYAML file."""
    keys = set(yaml.load(open(path, encoding="utf-8").read(), Loader=_AnyTag) or {})
    return keys, ref_keys(path)


def step_yamls(patterns):
    return sorted(p for pattern in patterns for p in glob.glob(os.path.join(ROOT, pattern)))


@pytest.mark.parametrize("step", sorted(STEPS))
def test_config_keys_are_what_the_step_reads_without_defaults(step):
    module, sources, _ = STEPS[step]
    declared = set(importlib.import_module(module).CONFIG_KEYS)
    reads = config_reads(sources)
    assert set(reads) - COMMAND_LINE_KEYS == declared, "CONFIG_KEYS differ from the keys the code reads"
    defaults = sorted(key for key, how in reads.items() if "get" in how and key not in COMMAND_LINE_KEYS)
    assert defaults == [], f"config.get(...) gives a Python-side default for keys the YAML declares: {defaults}"


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_key_a_yaml_sets_is_read_and_every_key_read_is_set(step):
    module, _, patterns = STEPS[step]
    declared = set(importlib.import_module(module).CONFIG_KEYS)
    paths = step_yamls(patterns)
    assert paths, patterns
    problems = []
    for path in paths:
        keys, refs = yaml_keys(path)
        unread = sorted(k for k in keys - declared - refs if not k.startswith("__"))
        missing = sorted(declared - keys)
        if unread or missing:
            problems.append(f"{os.path.relpath(path, ROOT)}: set but never read {unread}; read but not set {missing}")
    assert problems == []


def test_a_missing_key_is_a_usage_error_naming_the_file(tmp_path, capsys):
    from masr.train import pretrain

    source = os.path.join(ROOT, "egs", "mini", "conf", "pretrain_bestrq.yaml")
    text = open(source, encoding="utf-8").read()
    conf = tmp_path / "c.yaml"
    conf.write_text(re.sub(r"(?m)^valid_batches:.*\n", "", text))
    with pytest.raises(SystemExit) as stop:
        pretrain.main([str(conf), "--train_dir", str(tmp_path), "--exp_dir", str(tmp_path / "exp"), "--model.cmvn", "null"])
    assert stop.value.code == 2
    assert f"{conf}: missing config key 'valid_batches'" in capsys.readouterr().err


def test_a_key_the_step_does_not_read_is_a_warning(tmp_path, capsys):
    from masr.downstream import probe

    source = os.path.join(ROOT, "egs", "mini", "conf", "probe.yaml")
    conf = tmp_path / "probe.yaml"
    conf.write_text(open(source, encoding="utf-8").read() + "l2_penalty: 0.1   # a typo of l2\n")
    parser = probe.make_parser("probe")
    from masr.utils.config import parse_arguments

    args, config = parse_arguments(parser, [str(conf), "--pretrained", "x", "--dump_dir", "d", "--exp_dir", "e"],
                                   required=probe.CONFIG_KEYS)
    assert f"warning: {conf}: config key this step does not read: l2_penalty" in capsys.readouterr().err
