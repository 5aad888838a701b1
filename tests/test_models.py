"""Tests of the CNNs of the early-phase study (conjugacy.torch.models)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from conjugacy.torch.models import (  # noqa: E402
    ARCHITECTURES,
    INPUT_SHAPES,
    OBSERVED_LAYERS,
    ResNet20,
    build_model,
    count_parameters,
)

# Counts by hand: MnistNet 20*25+20 + 50*20*25+50 + 800*500+500 + 500*10+10;
# LeNet5 6*9+6 + 16*6*9+16 + 400*120+120 + 120*84+84 + 84*10+10;
# LeNet-300-100 784*300+300 + 300*100+100 + 100*10+10;
# ResNet-20: 269,722 (He et al.'s "0.27M"), counted in test_resnet20_layers_match_the_count_by_hand.
EXPECTED = {"lenet": 431_080, "lenet5": 60_074, "lenet300": 266_610, "resnet20": 269_722}
OBSERVED_SHAPES = {"lenet": (10, 500), "lenet5": (10, 84), "lenet300": (10, 100),
                   "resnet20": (10, 64)}


def test_resnet20_layers_match_the_count_by_hand():
    # every layer type of the model against its count by hand: 3x3 convolutions without bias
    # (stem + 3 stages of 3 blocks of 2), BatchNorm scale and shift after each, one linear head
    by_type: dict[str, int] = {}
    for module in ResNet20().modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            by_type[type(module).__name__] = by_type.get(type(module).__name__, 0) + own
    convs = 3 * 16 * 9 + 6 * 16 * 16 * 9  # stem + stage 1
    convs += 16 * 32 * 9 + 5 * 32 * 32 * 9  # stage 2
    convs += 32 * 64 * 9 + 5 * 64 * 64 * 9  # stage 3
    bns = 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64)
    assert by_type == {"Conv2d": convs, "BatchNorm2d": bns, "Linear": 64 * 10 + 10}
    assert convs + bns + 64 * 10 + 10 == EXPECTED["resnet20"]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_parameter_counts_shapes_and_observed_layer(arch):
    model = build_model(arch, seed=0)
    assert count_parameters(model) == EXPECTED[arch]
    params = dict(model.named_parameters())
    assert tuple(params[OBSERVED_LAYERS[arch]].shape) == OBSERVED_SHAPES[arch]
    out = model(torch.zeros((5,) + INPUT_SHAPES[arch]))
    assert out.shape == (5, 10)


def test_resnet20_option_a_shortcuts_have_no_parameters():
    model = ResNet20()
    downsampling = [m for m in model.modules() if type(m).__name__ == "_ShortcutA"]
    assert len(downsampling) == 2  # the first block of stages 2 and 3
    assert all(sum(p.numel() for p in m.parameters()) == 0 for m in downsampling)
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).reshape(2, 16, 4, 4)
    y = downsampling[0](x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert float(y[:, :8].abs().sum()) == 0.0 and float(y[:, 24:].abs().sum()) == 0.0


def test_init_is_seeded_and_follows_the_documented_distributions():
    a, b, c = build_model("lenet", seed=3), build_model("lenet", seed=3), build_model("lenet", seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc2.weight, c.fc2.weight)
    state = torch.get_rng_state()
    build_model("resnet20", seed=1)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is untouched
    bound = 1 / math.sqrt(800)
    top = float(a.fc1.weight.detach().abs().max())
    assert 0.99 * bound < top <= bound
    r = build_model("resnet20", seed=0)
    w = r.layer3[1].conv1.weight.detach()  # 64 x 64 x 3 x 3: kaiming normal, std sqrt(2 / 576)
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 576), rel=0.02)
    assert float(w.mean()) == pytest.approx(0.0, abs=0.002)


def test_lenets_output_log_probabilities():
    for arch in ("lenet", "lenet5", "lenet300"):
        out = build_model(arch, seed=0)(torch.randn((4,) + INPUT_SHAPES[arch]))
        assert torch.allclose(out.exp().sum(dim=1), torch.ones(4), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="arch"):
        build_model("vgg")
    with pytest.raises(ValueError, match="seed"):
        build_model("lenet", seed=-1)
