"""The reference UMSNet: architecture sizes against the paper, shapes, training."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from umsnet_fast import SensorSpec, presets
from umsnet_fast.reference import LSRBlock, UMSNet
from umsnet_fast.stats import attention_macs, model_costs

PRESETS = [presets.HHAR, presets.MHEALTH]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("width, expected", [(64, 33_472), (16, 8 * 256 + 8 * 16 + 3 * 16), (37, 8 * 37**2 + 11 * 37)])
def test_lsr_block_parameter_count(width, expected):
    assert n_params(LSRBlock(width)) == expected


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_parameter_counts_match_paper(preset):
    paper = dict(preset.paper_params)
    ours = {v: n_params(UMSNet(**preset.model_kwargs(24), variant=v)) for v in "ABC"}
    for v in "ABC":
        assert abs(ours[v] / paper[v] - 1) < 0.10, (v, ours[v], paper[v])
    for lo, hi in (("A", "B"), ("B", "C")):
        ours_diff, paper_diff = ours[hi] - ours[lo], paper[hi] - paper[lo]
        assert abs(ours_diff / paper_diff - 1) < 0.005, (lo, hi, ours_diff, paper_diff)


def test_design_totals():
    # DESIGN.md section 1 quotes these for HHAR; exact counts pin the architecture down.
    assert [n_params(UMSNet(**presets.HHAR.model_kwargs(24), variant=v)) for v in "ABC"] == [
        2_873_414, 4_856_390, 6_061_382]


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
@pytest.mark.parametrize("variant", "ABC")
@pytest.mark.parametrize("k", [1, 6, 12, 24])
def test_forward_shapes_every_variant(preset, variant, k):
    model = UMSNet(**preset.model_kwargs(k), variant=variant).eval()
    with torch.no_grad():
        out = model(preset.example_inputs(2, k))
    assert out.shape == (2, preset.num_classes)
    assert torch.isfinite(out).all()


def test_variant_sets_defaults_and_arguments_override():
    m = UMSNet([SensorSpec("a", 2)], 3, 4, "B", depths=(1, 1, 1, 1), num_layers=2)
    assert [len(s) for s in m.sensor_encoders["a"].stages] == [1, 1, 1, 1]
    assert [len(s) for s in m.fusion.stages] == [2, 2, 6, 2]
    assert len(m.encoder_layers) == 2
    assert m.config.variant == "B"


def test_custom_widths_and_kernel_size():
    m = UMSNet([SensorSpec("a", 5)], 3, 2, dims=(12, 20, 36), fusion_dims=(10, 14), depths=(1, 1, 1),
               fusion_depths=(1, 2), kernel_size=5, embed_dim=24, num_heads=3, mlp_dim=40).eval()
    assert m.config.min_slice_length == 4
    assert m.sensor_encoders["a"].stages[0][0].dwconv.kernel_size == (5,)
    assert m([torch.randn(3, 5, 2 * 9)]).shape == (3, 3)


def test_multiply_adds_match_flop_counter():
    # FlopCounterMode counts convolutions and matmuls but not the fused CPU attention kernel.
    model = UMSNet(**presets.HHAR.model_kwargs(24)).train()  # train mode: the plain MHA path
    with FlopCounterMode(display=False) as counter:
        model(presets.HHAR.example_inputs(1, 24))
    costs = model_costs(model, {s.name: 25 for s in presets.HHAR.sensors})
    assert counter.get_total_flops() // 2 == sum(c.macs for c in costs) - attention_macs(model.config)


@pytest.mark.parametrize("drop_path_rate", [0.0, 0.2])
def test_one_optimizer_step_lowers_the_loss(drop_path_rate):
    torch.manual_seed(0)
    model = UMSNet(**presets.HHAR.model_kwargs(6), layer_scale_init=0.1, drop_path_rate=drop_path_rate).train()
    x = presets.HHAR.example_inputs(16, 6)
    y = torch.randint(0, 6, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss():
        torch.manual_seed(1)  # the same drop-path masks before and after the step
        return torch.nn.functional.cross_entropy(model(x), y)

    before = loss()
    before.backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.step()
    with torch.no_grad():
        assert loss().item() < before.item()


def test_drop_path_only_in_training():
    model = UMSNet(**presets.HHAR.model_kwargs(6), layer_scale_init=1.0, drop_path_rate=0.5)
    x = presets.HHAR.example_inputs(4, 6)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
