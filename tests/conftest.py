"""Fixtures shared by the test modules (pytest finds them here; no test module imports another's)."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="torch device of the tests that take the `device` fixture (e.g. cuda; default cpu)")


@pytest.fixture(scope="session")
def device(request):
    """The ``--device`` of the run (SpeechBrain's convention): ``pytest --device cuda`` runs the
    device-sensitive tests (padding invariance, fused attention) on a GPU; skipped where it is
    not available."""
    name = request.config.getoption("--device")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"--device {name}: no CUDA device here")
    return torch.device(name)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and far faster on a busy machine. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny pretraining run, a LangID model fine-tuned from it, two short recordings
    (:func:`tests.helpers.runs.make_langid_models`)."""
    from tests.helpers.runs import make_langid_models

    return make_langid_models(tmp_path_factory.mktemp("infer"))


@pytest.fixture
def data_dir(tmp_path):
    """A valid data directory with real WAVs and every metadata stream
    (:func:`tests.helpers.validate_cases.make_valid_data_dir`); tests/test_validate.py and
    tests/test_bad_input_catalogue.py break it in the ways of ``BROKEN``."""
    from tests.helpers.validate_cases import make_valid_data_dir

    return make_valid_data_dir(tmp_path)
