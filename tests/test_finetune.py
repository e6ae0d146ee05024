"""masr.downstream.finetune: the model around a pretrained encoder, frozen warm-up, crops,
batched prediction, checkpoint selection on dev, and the self-contained model folder."""

import os
import re

import pytest
import torch

from masr.data.dataset import FeatsDataset
from masr.downstream.finetune import (FineTuneModel, RandomCrop, encoder_parameters, load_finetuned, predict,
                                      save_model_spec, select_checkpoint)
from masr.ssl.bestrq import BestRQ
from masr.train.checkpoint import save_checkpoint
from tests.helpers.dumps import make_dump_dir


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    return BestRQ(input_dim=20, d_model=32, num_layers=2, nhead=2, d_ffn=64, kernel_size=3, codebook_size=16)


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 80, 20, generator=g), torch.tensor([80, 60, 40])


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return make_dump_dir(str(tmp_path_factory.mktemp("dump")), num_utts=10)


def test_pooled_and_frame_shapes():
    encoder = tiny_encoder()
    feats, lengths = batch()
    logits, out_lengths = FineTuneModel(encoder, num_outputs=5, pooled=True)(feats, lengths)
    assert tuple(logits.shape) == (3, 5)
    expected_lengths = encoder.encode(feats, lengths).lengths
    assert out_lengths.tolist() == expected_lengths.tolist() == [19, 14, 9]
    logits, out_lengths = FineTuneModel(encoder, num_outputs=7, pooled=False, layer=1)(feats, lengths)
    assert tuple(logits.shape) == (3, 19, 7) and out_lengths.tolist() == [19, 14, 9]


def _grads(params):
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]


def test_frozen_warm_up_gives_no_gradient_to_the_encoder_then_trains_it():
    model = FineTuneModel(tiny_encoder(), num_outputs=3, pooled=True, freeze_encoder_steps=2).train()
    enc, head = encoder_parameters(model)
    assert len(enc) == len(list(model.encoder.parameters())) and head
    feats, lengths = batch()
    for step in (0, 1):
        model.zero_grad(set_to_none=True)
        model.set_step(step)
        logits, _ = model(feats, lengths)
        logits.logsumexp(-1).sum().backward()
        assert not any(_grads(enc)), f"step {step}: the frozen encoder got a gradient"
        assert all(_grads([model.head.weight, model.head.bias]))
        assert not model.encoder.training  # frozen: eval mode, no dropout in the encoder
    model.zero_grad(set_to_none=True)
    model.set_step(2)
    logits, _ = model(feats, lengths)
    logits.logsumexp(-1).sum().backward()
    assert model.encoder.training
    assert sum(_grads(enc)) > len(enc) // 2  # the encoder learns (its SSL head is unused)
    assert all(_grads([model.head.weight, model.head.bias]))


def test_without_warm_up_the_encoder_trains_from_the_start():
    model = FineTuneModel(tiny_encoder(), num_outputs=3, pooled=True).train()
    model.set_step(0)
    feats, lengths = batch()
    model(feats, lengths)[0].sum().backward()
    assert any(_grads(encoder_parameters(model)[0]))


def test_frozen_encoder_output_is_deterministic_in_training_mode():
    model = FineTuneModel(tiny_encoder(), num_outputs=3, pooled=True, freeze_encoder_steps=1, dropout=0.0).train()
    model.set_step(0)
    feats, lengths = batch()
    assert torch.equal(model(feats, lengths)[0], model(feats, lengths)[0])


def test_layer_selects_the_encoder_blocks():
    feats, lengths = batch(2)
    full = FineTuneModel(tiny_encoder(), num_outputs=4, pooled=True).eval()
    first = FineTuneModel(tiny_encoder(), num_outputs=4, pooled=True, layer=1).eval()
    last = FineTuneModel(tiny_encoder(), num_outputs=4, pooled=True, layer=2).eval()
    first.load_state_dict(full.state_dict())
    last.load_state_dict(full.state_dict())
    with torch.no_grad():
        y_full, y_first, y_last = full(feats, lengths)[0], first(feats, lengths)[0], last(feats, lengths)[0]
    assert not torch.allclose(y_first, y_full, atol=1e-4)
    assert torch.allclose(y_last, y_full, atol=1e-6)  # layer = num_layers is all of them


def test_a_training_batch_of_one_utterance_works():
    # the sampler makes batches of one (a bucket's last utterance): no batch statistics allowed
    model = FineTuneModel(tiny_encoder(), num_outputs=3, pooled=True).train()
    logits, _ = model(torch.randn(1, 80, 20), torch.tensor([80]))
    assert tuple(logits.shape) == (1, 3)


def test_random_crop_never_exceeds_max_frames_and_keeps_short_utterances_whole():
    sizes = {"a": 3, "b": 8, "c": 25, "d": 7, "e": 9}
    items = [{"utt": u, "feats": torch.arange(float(n)).unsqueeze(1) + 100 * i, "lang": "hrv"}
             for i, (u, n) in enumerate(sizes.items())]
    crop = RandomCrop(8)
    torch.manual_seed(0)
    starts = set()
    for _ in range(200):
        out = crop(items)
        assert out["utt"] == list(sizes) and out["lang"] == ["hrv"] * 5
        assert out["lengths"].tolist() == [3, 8, 8, 7, 8]
        assert out["feats"].shape[1] == 8
        for i, item in enumerate(items):
            n = int(out["lengths"][i])
            window = out["feats"][i, :n, 0]
            original = item["feats"][:, 0]
            start = int(window[0] - original[0])
            assert torch.equal(window, original[start:start + n])  # a contiguous window
            if sizes[item["utt"]] <= 8:
                assert torch.equal(window, original)  # whole
        starts.add(int(out["feats"][2, 0, 0] - 200))
    assert starts == set(range(0, 25 - 8 + 1))  # every window of the long one is drawn
    # no limit: collate as is
    assert RandomCrop(None)(items)["lengths"].tolist() == list(sizes.values())


def test_predict_returns_every_utterance_once_in_order_with_lengths(dump):
    encoder = tiny_encoder()
    dataset = FeatsDataset(dump)
    for pooled, outputs in ((True, 3), (False, 5)):
        model = FineTuneModel(encoder, num_outputs=outputs, pooled=pooled).train()
        small = predict(model, dump, batch_frames=200)
        assert model.training  # mode restored
        assert [u for u, _, _ in small] == sorted(dataset.utt_ids) and len(small) == len(dataset)
        large = predict(model, dump, batch_frames=100000)
        model.eval()
        for (utt, logits, n), (utt2, logits2, n2) in zip(small, large):
            feats = dataset[dataset.utt_ids.index(utt)]["feats"].unsqueeze(0)
            with torch.no_grad():
                alone, alone_lengths = model(feats, torch.tensor([feats.shape[1]]))
            assert utt == utt2 and n == n2 == int(alone_lengths[0])
            if pooled:
                assert logits.shape == (outputs,)
                assert torch.allclose(logits, alone[0], atol=1e-4)
            else:
                assert logits.shape == (n, outputs)
                assert torch.allclose(logits, alone[0, :n], atol=1e-4)
            assert torch.allclose(logits, logits2, atol=1e-4)  # batching does not matter


def _checkpointed_run(exp_dir, steps):
    """A run whose checkpoint of step s has head.bias filled with s."""
    model = FineTuneModel(tiny_encoder(), num_outputs=2, pooled=True)
    for step in steps:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["head.bias"].fill_(step)
        save_checkpoint(os.path.join(exp_dir, "checkpoints"), step, {"model": state}, keep=100)
    return model


def _step_of(model):
    return int(model.head.bias[0])


@pytest.mark.parametrize("higher_is_better, scores, best", [
    (True, {1: 0.2, 2: 0.7, 3: 0.5, 4: 0.6}, 2),
    (True, {1: 0.2, 2: 0.7, 3: 0.5, 4: 0.7}, 4),  # tie: the later step
    (False, {1: 0.3, 2: 0.3, 3: 0.5, 4: 0.9}, 2),
])
def test_select_checkpoint_keeps_the_best_dev_score(tmp_path, higher_is_better, scores, best):
    model = _checkpointed_run(str(tmp_path), scores)
    seen = []

    def score_fn(m):
        seen.append(_step_of(m))
        return scores[_step_of(m)]

    step, path, score = select_checkpoint(model, str(tmp_path), score_fn, higher_is_better=higher_is_better)
    assert seen == [1, 2, 3, 4]  # every checkpoint scored, in order
    assert (step, score) == (best, scores[best])
    assert path == str(tmp_path / "checkpoints" / f"step-{best:08d}")
    assert _step_of(model) == best  # the best weights are left loaded
    lines = (tmp_path / "selection.tsv").read_text().splitlines()
    assert lines[0] == "step\tdev_score\tselected"
    assert lines[1:] == [f"{s}\t{v:.6f}\t{'*' if s == best else ''}" for s, v in scores.items()]


def test_select_checkpoint_without_checkpoints_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to select from"):
        select_checkpoint(FineTuneModel(tiny_encoder(), 2, pooled=True), str(tmp_path), lambda m: 0.0)


def test_model_folder_round_trip(tmp_path):
    model = _checkpointed_run(str(tmp_path), [3])
    path = str(tmp_path / "checkpoints" / "step-00000003")
    select_checkpoint(model, str(tmp_path), lambda m: 1.0)
    save_model_spec(str(tmp_path), model, "langid", path, {"num_mel_bins": 20}, labels=["hrv", "srp"])
    loaded, spec = load_finetuned(str(tmp_path))
    assert not loaded.training
    assert spec["task"] == "langid" and spec["labels"] == ["hrv", "srp"] and spec["fbank"] == {"num_mel_bins": 20}
    assert spec["checkpoint"] == os.path.join("checkpoints", "step-00000003")
    feats, lengths = batch()
    with torch.no_grad():
        assert torch.equal(loaded(feats, lengths)[0], model.eval()(feats, lengths)[0])


def test_load_finetuned_names_a_folder_without_model_json(tmp_path):
    folder = tmp_path / "unfinished_run"
    os.makedirs(folder / "checkpoints")
    with pytest.raises(FileNotFoundError, match=re.escape(str(folder))):
        load_finetuned(str(folder))
