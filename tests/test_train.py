"""`umsnet-fast train` / `evaluate`: folds, metrics.json, checkpoints into both models, BasicMotions end to end."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn", reason="training needs scikit-learn: pip install 'umsnet-fast[data]'")
pytest.importorskip("safetensors", reason="checkpoints need safetensors: pip install 'umsnet-fast[data]'")

from umsnet_fast import reference  # noqa: E402
from umsnet_fast.cli import main  # noqa: E402
from umsnet_fast.har import CheckpointError, load_checkpoint, load_mhealth  # noqa: E402
from umsnet_fast.har._optional import require  # noqa: E402
from umsnet_fast.har.train import make_folds  # noqa: E402
from umsnet_fast.model import UMSNet  # noqa: E402

from har_files import write_hhar, write_mhealth  # noqa: E402

TINY = ["--dims", "8,8,8,8", "--fusion-dims", "8,8,8,8", "--depths", "1,1,1,1", "--fusion-depths", "1,1,1,1",
        "--layers", "1", "--embed-dim", "16", "--heads", "2", "--mlp-dim", "16",
        "--epochs", "1", "--batch-size", "4", "--quiet", "--threads", "1"]


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_loso_folds_metrics_and_checkpoints(tmp_path):
    (tmp_path / "mhealth").mkdir()
    root = write_mhealth(tmp_path / "mhealth", subjects=(1, 2, 3))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mhealth", "--data-root", str(root), "--window-seconds", "1.5",
                 "--output", str(out), "--seed", "3", *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "accuracy_std", "macro_f1_std", "folds"} <= set(metrics)
    ds = load_mhealth(root, window_seconds=1.5)
    assert [f["test_subjects"] for f in metrics["folds"]] == [["1"], ["2"], ["3"]]
    for f in metrics["folds"]:
        assert f["n_test"] == int((ds.subjects == int(f["fold"])).sum()) and f["n_train"] + f["n_test"] == len(ds)
        assert 0.0 <= f["accuracy"] <= 1.0 and 0.0 <= f["macro_f1"] <= 1.0
        assert np.sum(f["confusion_matrix"]) == f["n_test"]
    assert metrics["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in metrics["folds"]]))
    assert metrics["macro_f1"] == pytest.approx(np.mean([f["macro_f1"] for f in metrics["folds"]]))

    # the checkpoint loads strictly into both models, which agree in eval mode
    ckpt = out / metrics["folds"][1]["checkpoint"]
    fast, meta = load_checkpoint(ckpt, fast=True)
    ref, _ = load_checkpoint(ckpt.with_suffix(".json"), fast=False)
    assert type(fast) is UMSNet and type(ref) is reference.UMSNet and not fast.training
    assert fast.config == ref.config and fast.config.dims == (8, 8, 8, 8) and fast.config.num_slices == 6
    assert meta["test_subjects"] == ["2"] and meta["classes"] == list(ds.classes)
    xs = [torch.randn(5, s.channels, 96) for s in ds.sensors]
    torch.testing.assert_close(fast(xs), ref(xs), atol=1e-5, rtol=1e-5)
    # a sidecar that disagrees with the metadata inside the weights file is refused
    good = ckpt.with_suffix(".json").read_text()
    bad = json.loads(good)
    bad["model"]["dims"] = [8, 8, 8, 16]
    ckpt.with_suffix(".json").write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match=r"disagree on \['model'\]"):
        load_checkpoint(ckpt)
    ckpt.with_suffix(".json").write_text(good)
    # without the sidecar the metadata inside the safetensors file is used
    ckpt.with_suffix(".json").unlink()
    assert load_checkpoint(ckpt)[1]["test_subjects"] == ["2"]

    # evaluate (the fast model) reproduces the fold's metrics from the checkpoint alone
    assert main(["evaluate", "--checkpoint", str(ckpt), "--output", str(tmp_path / "eval")]) == 0
    ev = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ev["subjects"] == ["2"] and ev["n"] == metrics["folds"][1]["n_test"]
    assert ev["accuracy"] == pytest.approx(metrics["folds"][1]["accuracy"])
    assert ev["macro_f1"] == pytest.approx(metrics["folds"][1]["macro_f1"])


def test_fixed_split_hhar(tmp_path):
    root = write_hhar(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "hhar", "--data-root", str(root), "--split", "fixed",
                 "--test-subjects", "b", "--output", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (fold,) = metrics["folds"]
    assert fold["test_subjects"] == ["b"] and fold["n_test"] == 9 and fold["n_train"] == 9
    assert (out / "fold-b.safetensors").is_file() and (out / "fold-b.json").is_file()
    assert metrics["data"]["devices"] == "all" and metrics["data"]["window_seconds"] == 6.0


def test_make_folds_errors(tmp_path):
    ds = load_mhealth(write_mhealth(tmp_path, subjects=(1, 2)), window_seconds=1.5)
    with pytest.raises(ValueError, match=r"test subjects \['7'\] not in the data set"):
        make_folds(ds, "loso", ["7"])
    with pytest.raises(ValueError, match="needs test subjects"):
        make_folds(ds, "fixed")
    with pytest.raises(ValueError, match="at least 2 subjects"):
        make_folds(ds.subset(ds.subjects == 1), "loso")
    assert [f[0] for f in make_folds(ds, "loso", ["2"])] == ["2"]


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    with pytest.raises(ImportError, match=r"umsnet-fast\[data\]"):
        require("sklearn.metrics", "scikit-learn")


def test_basicmotions_end_to_end(tmp_path):
    """UMSNet-A on UEA BasicMotions (inside sktime), the fixed 40/40 split, CPU, default settings."""
    pytest.importorskip("sktime", reason="BasicMotions is read from sktime: pip install 'umsnet-fast[data]'")
    out = tmp_path / "bm"
    assert main(["train", "--dataset", "basicmotions", "--output", str(out), "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["folds"][0]["n_train"] == 40 and metrics["folds"][0]["n_test"] == 40
    assert metrics["model"]["variant"] == "A" and "dims" not in metrics["model"]
    assert metrics["accuracy"] >= 0.9, metrics
    assert main(["evaluate", "--checkpoint", str(out / "fold-test.safetensors"), "--output", str(tmp_path / "ev")]) == 0
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["accuracy"] == pytest.approx(metrics["accuracy"]) and ev["n"] == 40


def test_rotation_augmentation_turns_the_physical_signal():
    from umsnet_fast.har.train import TrainSettings, random_rotations, train_model

    r = random_rotations(256, 10.0, torch.Generator().manual_seed(0), "cpu")
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(256, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(256), atol=1e-5, rtol=0)
    angle = torch.rad2deg(torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert 5.0 < angle.mean() < 12.0  # |N(0, 10 degrees)| has mean 8

    # the model sees rotated windows: the norm of each raw 3-axis sample is kept, the 2-channel sensor untouched
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(2))

        def forward(self, xs):
            seen.append([x.detach().clone() for x in xs])
            return self.w.expand(len(xs[0]), 2) + 0 * sum(x.sum() for x in xs)

    gen = np.random.default_rng(0)
    raw = [gen.normal(size=(8, 3, 5)).astype(np.float32), gen.normal(size=(8, 2, 5)).astype(np.float32)]
    mean, std = [np.array([1.0, -2.0, 0.5]), np.zeros(2)], [np.array([2.0, 0.5, 1.0]), np.ones(2)]
    xs = [((a - m[None, :, None]) / s[None, :, None]).astype(np.float32) for a, m, s in zip(raw, mean, std)]
    settings = TrainSettings(epochs=1, batch_size=8, augment_rotation=30.0, warmup_epochs=0)
    train_model(Probe(), xs, np.zeros(8, np.int64), settings, normalization=list(zip(mean, std)))
    (acc, other), = seen
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))  # the batch order of train_model
    as_column = (lambda v: torch.tensor(v, dtype=torch.float32)[None, :, None])  # noqa: E731
    turned = acc * as_column(std[0]) + as_column(mean[0])
    torch.testing.assert_close(turned.norm(dim=1), torch.from_numpy(raw[0])[order].norm(dim=1), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(turned, torch.from_numpy(raw[0])[order], atol=1e-3)
    torch.testing.assert_close(other, torch.from_numpy(xs[1])[order])

    # per class: the windows of a class with a spread of 0 stay as they are, the others turn
    seen.clear()
    labels = np.array([0, 1] * 4)
    settings.augment_rotation, settings.augment_rotation_by_class = 0.0, {"moving": 30.0}
    train_model(Probe(), xs, labels, settings, normalization=list(zip(mean, std)), classes=("still", "moving"))
    (acc, _), = seen
    still, moving = torch.from_numpy(labels[order.numpy()] == 0), torch.from_numpy(labels[order.numpy()] == 1)
    turned = acc * as_column(std[0]) + as_column(mean[0])
    raw_ordered = torch.from_numpy(raw[0])[order]
    torch.testing.assert_close(turned[still], raw_ordered[still], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(turned.norm(dim=1), raw_ordered.norm(dim=1), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(turned[moving], raw_ordered[moving], atol=1e-3)
    with pytest.raises(ValueError, match="no class 'moving' among \\['a', 'b'\\]"):
        train_model(Probe(), xs, labels, settings, classes=("a", "b"))
    with pytest.raises(ValueError, match="needs classes="):
        train_model(Probe(), xs, labels, settings)
