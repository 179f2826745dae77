"""Bad input (DESIGN.md section 6): each gets a clear error naming sensor, expected and given shape."""
import pytest
import torch

from umsnet_fast import SensorSpec, UMSNet, presets, reference

MODELS = [reference.UMSNet, UMSNet]


@pytest.fixture(params=MODELS, ids=["reference", "fast"])
def model(request):
    return request.param(**presets.HHAR.model_kwargs(6)).eval()


def good(batch=2):
    return presets.HHAR.example_inputs(batch, 6)


def test_wrong_sensor_count(model):
    with pytest.raises(ValueError, match=r"expected 2 input tensors \(sensors \['acc', 'gyro'\]\), got 1"):
        model(good()[:1])


def test_wrong_sensor_names(model):
    acc, gyro = good()
    with pytest.raises(ValueError, match=r"missing \['gyro'\], unexpected \['gyr'\]"):
        model({"acc": acc, "gyr": gyro})


def test_wrong_channel_count(model):
    acc, gyro = good()
    with pytest.raises(ValueError,
                       match=r"sensor 'gyro': expected shape \(batch, 3, K\*L\) with K=6, got \(2, 4, 150\)"):
        model([acc, torch.randn(2, 4, 150)])


def test_wrong_rank(model):
    acc, gyro = good()
    with pytest.raises(ValueError, match=r"sensor 'acc'.*got \(3, 150\)"):
        model([acc[0], gyro])


def test_length_not_multiple_of_k(model):
    acc, gyro = good()
    with pytest.raises(ValueError,
                       match=r"sensor 'acc': length 149 is not a multiple of num_slices=6.*got \(2, 3, 149\)"):
        model([acc[..., :149], gyro])


def test_slices_too_short(model):
    with pytest.raises(ValueError, match=r"sensor 'acc': slices of 7 samples are too short.*L >= 8, got \(2, 3, 42\)"):
        model([torch.randn(2, 3, 42), torch.randn(2, 3, 42)])


def test_non_floating_dtype(model):
    acc, gyro = good()
    with pytest.raises(TypeError, match=r"sensor 'gyro': expected a floating-point tensor, got dtype torch.int64"):
        model([acc, gyro.long()])


def test_mixed_dtypes(model):
    acc, gyro = good()
    with pytest.raises(TypeError, match=r"sensor 'gyro': dtype torch.float64 differs from sensor 'acc'"):
        model([acc, gyro.double()])


def test_not_a_tensor(model):
    acc, _ = good()
    with pytest.raises(TypeError, match=r"sensor 'gyro': expected a torch.Tensor, got list"):
        model([acc, [[0.0]]])
    with pytest.raises(TypeError, match="single tensor"):
        model(acc)


def test_batch_mismatch(model):
    acc, gyro = good()
    with pytest.raises(ValueError, match=r"sensor 'gyro': batch size 1 differs from sensor 'acc'.s 2"):
        model([acc, gyro[:1]])


def test_different_devices(model):
    acc, gyro = good()
    with pytest.raises(ValueError, match=r"sensor 'gyro': tensor is on meta, sensor 'acc'.s on cpu"):
        model([acc, gyro.to("meta")])


def test_check_finite(model):
    acc, gyro = good()
    gyro[1, 2, 3] = float("nan")
    assert torch.isnan(model([acc, gyro])).any()  # propagates by default
    with pytest.raises(ValueError, match="input 'gyro' contains NaN or Inf"):
        model([acc, gyro], check_finite=True)
    assert torch.isfinite(model(good(), check_finite=True)).all()


@pytest.mark.parametrize("kwargs, match", [
    ({"variant": "D"}, "variant must be one of"),
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"embed_dim": 30, "num_heads": 8}, "divisible by num_heads"),
    ({"dims": (16, 32), "depths": (1, 1, 1)}, "one entry per stage"),
    ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ({"dropout": "0.1"}, r"dropout must be a finite number in \[0, 1\), got '0.1'"),
    ({"dropout": -0.5}, r"dropout must be a finite number in \[0, 1\), got -0.5"),
    ({"layer_scale_init": None}, "layer_scale_init must be a finite number, got None"),
    ({"layer_scale_init": "big"}, "layer_scale_init must be a finite number, got 'big'"),
    ({"layer_scale_init": float("nan")}, "layer_scale_init must be a finite number, got nan"),
    ({"drop_path_rate": True}, "drop_path_rate must be a finite number in .*got True"),
    ({"variant": ["A"]}, r"variant must be one of \['A', 'B', 'C'\], got \['A'\]"),
    ({"num_heads": 2.0}, "num_heads must be a positive int, got 2.0"),
    ({"dims": 16}, "dims must be a sequence of ints, got 16"),
])
@pytest.mark.parametrize("cls", MODELS, ids=["reference", "fast"])
def test_bad_constructor_arguments(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**presets.HHAR.model_kwargs(6), **kwargs)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_unsupported_floating_dtype(model, dtype):
    acc, gyro = good()
    with pytest.raises(TypeError, match=rf"sensor 'acc': expected one of the dtypes .*float64\), got dtype {dtype}"):
        model([acc.to(dtype), gyro.to(dtype)])


def test_bad_sensor_specs():
    with pytest.raises(ValueError, match="identifier"):
        SensorSpec("acc.x", 3)
    with pytest.raises(ValueError, match="positive int"):
        SensorSpec("acc", 0)
    with pytest.raises(ValueError, match="unique"):
        reference.UMSNet([SensorSpec("a", 3), SensorSpec("a", 3)], 2)
