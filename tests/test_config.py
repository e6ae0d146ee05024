"""masr.utils.config: HyperPyYAML configs with command-line overrides."""

import pytest

from masr.utils.config import load_config, make_parser, overrides_from_args, parse_arguments


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nvoices:\n  rate: [140, 190]\n  pitch: [30, 70]\nname: mini\n")
    return path


def test_overrides_types_and_nesting():
    assert overrides_from_args(["--seed=3", "--voices.rate", "[1, 2]", "--num-mel-bins", "40"]) == {
        "seed": 3, "voices": {"rate": [1, 2]}, "num_mel_bins": 40}


@pytest.mark.parametrize("args, message", [(["seed", "3"], "expected an option"), (["--seed"], "has no value")])
def test_bad_override_syntax(args, message):
    with pytest.raises(ValueError, match=message):
        overrides_from_args(args)


def test_nested_override_keeps_siblings(config_file):
    config = load_config(config_file, {"voices": {"rate": [100, 110]}})
    assert config["voices"] == {"rate": [100, 110], "pitch": [30, 70]}


def test_unknown_override_key_is_an_error_naming_the_file(config_file):
    with pytest.raises(ValueError, match=r"c\.yaml: unknown config key.*sed"):
        load_config(config_file, {"sed": 2})


def test_parse_arguments_splits_declared_options_from_overrides(config_file, capsys):
    parser = make_parser("test")
    parser.add_argument("--nj", type=int, default=1)
    args, config = parse_arguments(parser, [str(config_file), "--nj", "2", "--name", "other"])
    assert args.nj == 2 and config["name"] == "other" and config["seed"] == 1
    with pytest.raises(SystemExit):
        parse_arguments(parser, [str(config_file), "--bogus", "1"])
    assert "unknown config key" in capsys.readouterr().err
