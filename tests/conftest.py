"""Fixtures shared by the test modules (pytest finds them here; no test module imports another's)."""

import pytest
import torch


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
