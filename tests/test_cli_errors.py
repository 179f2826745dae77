"""A user's mistake on the command line gets one line on stderr naming the argument or file, and exit 2."""
from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("safetensors", reason="checkpoints need safetensors: pip install 'umsnet-fast[data]'")
pytest.importorskip("sklearn", reason="training needs scikit-learn: pip install 'umsnet-fast[data]'")

from umsnet_fast import presets, reference  # noqa: E402
from umsnet_fast.cli import main  # noqa: E402
from umsnet_fast.har import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402

from har_files import write_mhealth  # noqa: E402

TINY = dict(dims=(8, 8, 8, 8), fusion_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1), fusion_depths=(1, 1, 1, 1),
            num_layers=1, embed_dim=16, num_heads=2, mlp_dim=16)

TINY_ARGS = ["--dims", "8,8,8,8", "--fusion-dims", "8,8,8,8", "--depths", "1,1,1,1", "--fusion-depths", "1,1,1,1",
             "--layers", "1", "--embed-dim", "16", "--heads", "2", "--mlp-dim", "16"]


def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:  # the argument parser exits itself
        code = e.code
    return code, capsys.readouterr().err


def assert_one_line(code, err, *fragments):
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)


@pytest.mark.parametrize("args,fragments", [
    (["--heads", "3"], ["--embed-dim, --heads", "embed_dim 16 must be divisible by num_heads 3"]),
    (["--dims", "8,8"], ["--dims, --depths", "one entry per stage"]),
    (["--dims", "8,x,8,8"], ["argument --dims", "expected comma-separated integers, got '8,x,8,8'"]),
    (["--dims", "0,8,8,8"], ["argument --dims", ">= 1"]),
    (["--batch-size", "0"], ["argument --batch-size", "expected an integer >= 1, got 0"]),
    (["--epochs", "0"], ["argument --epochs", "expected an integer >= 1, got 0"]),
    (["--lr", "-1"], ["argument --lr", "expected a finite number in (0, inf], got -1"]),
    (["--lr", "nan"], ["argument --lr", "got nan"]),
    (["--drop-path", "1"], ["argument --drop-path", "in [0, 1)"]),
    (["--threads", "0"], ["argument --threads"]),
    (["--window-seconds", "0"], ["argument --window-seconds"]),
    (["--train-step-seconds", "-1"], ["argument --train-step-seconds"]),
    (["--augment-rotation-by-class", "walking"], ["argument --augment-rotation-by-class", "expected NAME=DEGREES"]),
    (["--augment-rotation-by-class", "walking=-5"], ["argument --augment-rotation-by-class", "in [0, inf], got -5"]),
    (["--device", "gpu0"], ["argument --device", "'gpu0' is not a torch device"]),
])
def test_train_argument_errors(tmp_path, capsys, args, fragments):
    code, err = run_cli(["train", "--dataset", "mhealth", "--data-root", str(tmp_path), *TINY_ARGS, *args], capsys)
    assert_one_line(code, err, *fragments)


def test_train_step_is_refused_for_fixed_windows(capsys):
    code, err = run_cli(["train", "--dataset", "basicmotions", "--train-step-seconds", "1", *TINY_ARGS], capsys)
    assert_one_line(code, err, "--train-step-seconds does not apply")


def test_rotation_of_a_class_the_data_set_lacks(capsys):
    pytest.importorskip("sktime", reason="BasicMotions is read from sktime: pip install 'umsnet-fast[data]'")
    code, err = run_cli(["train", "--dataset", "basicmotions", "--augment-rotation-by-class", "flying=30,running=5",
                         *TINY_ARGS], capsys)
    assert_one_line(code, err, "--augment-rotation-by-class: no class 'flying' in basicmotions",
                    "(its classes: badminton, running, standing, walking)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is missing")
def test_unavailable_cuda_device(tmp_path, capsys):
    for command in (["train", "--dataset", "mhealth", "--data-root", str(tmp_path)],
                    ["evaluate", "--checkpoint", str(tmp_path / "x.safetensors")]):
        assert_one_line(*run_cli([*command, "--device", "cuda"], capsys), "argument --device",
                        "CUDA is not available")


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny checkpoint as `umsnet-fast train` writes it, without training."""
    model = reference.UMSNet(**presets.HHAR.model_kwargs(4), **TINY)
    norm = {s.name: {"mean": [0.0] * s.channels, "std": [1.0] * s.channels} for s in presets.HHAR.sensors}
    meta = {"classes": list(presets.HHAR.classes), "normalization": norm, "data": {"dataset": "hhar"}}
    return save_checkpoint(tmp_path / "fold-a", model, meta)


def _edit_sidecar(path, edit):
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    edit(meta)
    sidecar.write_text(json.dumps(meta))


def _other_weights(path):
    """The same metadata over the weights of another architecture."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    other = reference.UMSNet(**presets.HHAR.model_kwargs(4), **dict(TINY, dims=(8, 8, 8, 16)))
    save_file(other.state_dict(), str(path), metadata=metadata)


def _drop_metadata(path):
    """The weights without the metadata inside (only the sidecar describes them)."""
    from safetensors.torch import load_file, save_file
    save_file(load_file(str(path)), str(path))


BROKEN = {
    "empty": (lambda p: p.write_bytes(b""), "not a readable safetensors file"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable safetensors"),
    "not safetensors": (lambda p: p.write_text("just some text, long enough to hold a header\n"),
                        "not a readable safetensors file"),
    "sidecar not json": (lambda p: p.with_suffix(".json").write_text("{"), "fold-a.json: not valid JSON"),
    "sidecar lacks model": (lambda p: _edit_sidecar(p, lambda m: m.pop("model")), "fold-a.json: expected a 'model'"),
    "sidecar lacks sensors": (lambda p: _edit_sidecar(p, lambda m: m["model"].pop("sensors")), "at least 'sensors'"),
    "sidecar with a bad argument": (lambda p: _drop_metadata(p) or _edit_sidecar(p, lambda m: m["model"].update(x=1)),
                                    "fold-a.json: its 'model' arguments do not make a UMSNet"),
    "sidecar with other heads": (lambda p: _edit_sidecar(p, lambda m: m["model"].update(num_heads=4)),
                                 "disagree on ['model']"),
    "weights of another model": (_other_weights, "the weights do not fit the model of fold-a.json: size mismatch for"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_checkpoints(checkpoint, capsys, name):
    damage, message = BROKEN[name]
    load_checkpoint(checkpoint)  # intact, it loads
    damage(checkpoint)
    with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_checkpoint(checkpoint)
    assert_one_line(*run_cli(["evaluate", "--checkpoint", str(checkpoint)], capsys), checkpoint.stem, message)


def test_metadata_without_classes(tmp_path, capsys):
    path = save_checkpoint(tmp_path / "bare", reference.UMSNet(**presets.HHAR.model_kwargs(4), **TINY), {})
    assert_one_line(*run_cli(["evaluate", "--checkpoint", str(path)], capsys),
                    "bare.safetensors: its metadata lacks ['classes', 'normalization']")


def test_missing_checkpoint_and_bad_backend(checkpoint, capsys):
    assert_one_line(*run_cli(["evaluate", "--checkpoint", str(checkpoint.with_name("nope.safetensors"))], capsys),
                    "nope.safetensors not found")
    assert_one_line(*run_cli(["evaluate", "--checkpoint", str(checkpoint), "--backend", "tensorrt"], capsys),
                    "--backend tensorrt", "unknown backend 'tensorrt'")
    from umsnet_fast.backends import available_backends
    unavailable = [n for n, i in available_backends().items() if not i.available]
    if unavailable:
        assert_one_line(*run_cli(["evaluate", "--checkpoint", str(checkpoint), "--backend", unavailable[0]], capsys),
                        f"--backend {unavailable[0]}", "unavailable")
    assert_one_line(*run_cli(["evaluate", "--checkpoint", str(checkpoint), "--batch-size", "0"], capsys),
                    "argument --batch-size")


def test_unwritable_output_is_one_line(tmp_path, capsys):
    # an OSError naming a file (here: --output lies inside a plain file) is reported in one line too
    root = write_mhealth(tmp_path, subjects=(1, 2))
    (tmp_path / "taken").write_text("")
    code, err = run_cli(["train", "--dataset", "mhealth", "--data-root", str(root), "--window-seconds", "1.5",
                         "--output", str(tmp_path / "taken" / "run"), *TINY_ARGS, "--epochs", "1", "--quiet"], capsys)
    assert_one_line(code, err, "taken")
