"""HyperPyYAML configs with command-line overrides, for every Python step of the recipes.

Each entry point is called as ``python -m masr.<package>.<module> conf/<step>.yaml [options]
[--key value ...]``: options the step declares are parsed by ``argparse``; every other
``--key value`` (or ``--key=value``) overrides ``key`` in the YAML. Dotted keys reach into
nested mappings (``--voices.rate "[150, 180]"``) and values are parsed as YAML, so numbers and
lists keep their types. An override naming a key the config does not have is an error.
"""

import argparse
import re
import sys

import yaml
from hyperpyyaml import load_hyperpyyaml


def overrides_from_args(args):
    """Turn leftover ``--key value`` / ``--key=value`` arguments into a nested dict.

    Arguments
    ---------
    args : list of str

    Returns
    -------
    dict

    Example
    -------
    >>> overrides_from_args(["--seed", "7", "--voices.rate=[150, 180]", "--name", "x y"])
    {'seed': 7, 'voices': {'rate': [150, 180]}, 'name': 'x y'}
    """
    out = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ValueError(f"expected an option '--key value', got '{arg}'")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
        elif i + 1 < len(args):
            i += 1
            value = args[i]
        else:
            raise ValueError(f"option '{arg}' has no value")
        node = out
        *parents, leaf = key.replace("-", "_").split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value) if value != "" else ""
        i += 1
    return out


def load_config(path, overrides=None):
    """Load a HyperPyYAML file, applying ``overrides`` (a dict) first.

    Raises
    ------
    ValueError
        When an override names a key the file does not define; the message names the file.

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(p, "w").write("seed: 1\\nlr: !ref <base_lr> * 2\\nbase_lr: 0.5\\n")
    >>> load_config(p, {"seed": 3})
    {'seed': 3, 'lr': 1.0, 'base_lr': 0.5}
    """
    with open(path, encoding="utf-8") as f:
        try:
            return load_hyperpyyaml(f, overrides or {}, overrides_must_match=True)
        except KeyError as e:
            raise ValueError(f"{path}: unknown config key in overrides: {e.args[0]}") from None


def check_config_keys(config, keys, where="config"):
    """Raise ValueError naming ``where`` and every key of ``keys`` that ``config`` lacks.

    Each entry point reads its config without Python-side defaults: every key it reads must be
    declared in the YAML (its ``CONFIG_KEYS``; ``tests/test_config_keys.py`` checks the egs YAMLs).

    Example
    -------
    >>> check_config_keys({"seed": 1}, ("seed",))
    >>> check_config_keys({"seed": 1}, ("seed", "lr", "max_steps"), "conf/x.yaml")
    Traceback (most recent call last):
        ...
    ValueError: conf/x.yaml: missing config keys 'lr', 'max_steps' (every key this step reads is declared in its YAML; see the egs/*/conf files)
    """
    missing = [key for key in keys if key not in config]
    if missing:
        raise ValueError(f"{where}: missing config key{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(k) for k in missing)} (every key this step reads is declared "
                         "in its YAML; see the egs/*/conf files)")


def ref_keys(path):
    """The top-level keys a HyperPyYAML file uses itself, through ``!ref <key>`` (or ``<key>``
    inside a ``!ref`` expression).

    Example
    -------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.yaml")
    >>> _ = open(p, "w").write("lr: 0.1  # <not_a_ref>\\nopt: {lr: !ref <lr>, x: !ref <a>/<b>}\\n")
    >>> sorted(ref_keys(p))
    ['a', 'b', 'lr']
    """
    keys = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            for expression in re.findall(r"!ref\s+([^,}\]\n#]*)", line):
                keys.update(re.findall(r"<([A-Za-z_]\w*)", expression))
    return keys


def unread_config_keys(path, config, keys):
    """Top-level keys of the loaded ``config`` that a step reading ``keys`` never uses: neither
    read by the step nor used by the file itself through ``!ref``, nor ``__``-prefixed (run at
    load time). A typo, or a key of an older config (``betas:`` beside ``optimizer:``), is
    silently ignored otherwise."""
    used = set(keys) | ref_keys(path)
    return sorted(k for k in config if k not in used and not k.startswith("__"))


def parse_arguments(parser, argv=None, required=()):
    """Parse a step's declared options, then load its config with the remaining overrides.

    Arguments
    ---------
    parser : argparse.ArgumentParser
        The step's parser; must declare a positional ``config`` argument.
    argv : list of str or None
        Arguments (default ``sys.argv[1:]``).
    required : sequence of str
        The keys the step reads (its ``CONFIG_KEYS``): one missing is a usage error (exit 2)
        naming the file; keys it does not read (:func:`unread_config_keys`) are a warning.

    Returns
    -------
    args : argparse.Namespace
        The declared options.
    config : dict
        The loaded config, overrides applied.
    """
    args, rest = parser.parse_known_args(argv)
    try:
        overrides = overrides_from_args(rest)
        config = load_config(args.config, overrides)
        check_config_keys(config, required, args.config)
    except ValueError as e:
        parser.error(str(e))
    unread = unread_config_keys(args.config, config, required) if required else []
    if unread:
        print(f"warning: {args.config}: config key{'s' if len(unread) > 1 else ''} this step does not read: "
              f"{', '.join(unread)}", file=sys.stderr)
    return args, config


def make_parser(description):
    """An ``ArgumentParser`` with the positional ``config`` every step takes."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Any other --key value overrides 'key' in the config (dotted keys for nested ones).",
    )
    parser.add_argument("config", help="HyperPyYAML config file")
    return parser
