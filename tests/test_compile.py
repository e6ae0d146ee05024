"""compile: true (torch.compile of the SSL model) trains the same model as eager execution."""

import pytest
import torch

from masr.ssl.bestrq import BestRQ
from masr.train.pretrain import build_pretrain_trainer, compiled_graphs
from tests.helpers.dumps import make_dump_dir
from tests.helpers.runs import pretrain_config

pytestmark = pytest.mark.slow   # end to end: -m 'not slow' leaves it out

STEPS = 3


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("dump")), num_utts=12)


def _train(dump, exp, compile):
    torch.manual_seed(0)
    # dropout 0: inductor draws dropout masks from its own generator, in an order of its own
    model = BestRQ(input_dim=20, d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16,
                   dropout=0.0, attention="rope_sdpa")
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    config = pretrain_config(dump, str(exp), model, max_steps=STEPS, log_every=1, compile=compile, pad_multiple=64,
                             precision="auto")
    build_pretrain_trainer(config).fit()
    losses = [float(line.split("| loss ")[1].split()[0])
              for line in (exp / "train_log.txt").read_text().splitlines() if "| loss " in line]
    return model.eval(), losses, initial


def test_compiled_training_matches_eager(dump, tmp_path, monkeypatch):
    """Three AdamW steps on batches of different shapes (masking noise included: it is drawn
    outside the compiled graph) give the same losses and the same model compiled and eager."""
    import torch._dynamo
    import torch._inductor.config

    # static shapes, so that the check below sees one graph per padded shape
    monkeypatch.setattr(torch._dynamo.config, "automatic_dynamic_shapes", False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager, eager_losses, initial = _train(dump, tmp_path / "eager", compile=False)
    compiled, compiled_losses, _ = _train(dump, tmp_path / "compiled", compile=True)
    assert compiled_graphs() >= 1  # it did compile
    assert len(eager_losses) == STEPS
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    # AdamW's first steps move every weight by about lr * sign(gradient): compare the updates as a whole
    update = lambda model: torch.cat([(v - initial[k]).flatten() for k, v in model.state_dict().items()  # noqa: E731
                                      if v.is_floating_point()])
    gap = (update(compiled) - update(eager)).norm() / update(eager).norm()
    assert gap < 1e-2, f"compiled and eager updates differ by {gap:.2%}"
    g = torch.Generator().manual_seed(3)
    feats, lengths = torch.randn(2, 128, 20, generator=g), torch.tensor([128, 90])
    with torch.no_grad():
        torch.testing.assert_close(compiled.embed(feats, lengths), eager.embed(feats, lengths), rtol=1e-3, atol=1e-4)
