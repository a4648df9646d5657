"""Model shapes, presets, and the three loss terms (ranking sign, margin, skipped ties)."""

from __future__ import annotations

import math

import pytest
import torch

from models.losses import IGNORE, LossConfig, attribute_loss, mtmr_loss, ranking_loss
from models.mtmr import ATTRIBUTE_NAMES, MTMRNet, MTMRNetConfig
from models.resnet import ResNet


@pytest.mark.parametrize("depth,expected", [(18, 256), (34, 256), (50, 1024)])
def test_resnet_depths_and_feature_size(depth, expected):
    trunk = ResNet(depth, width=32, in_channels=1, stem_stride=2)
    assert trunk.feature_dim == expected
    assert trunk(torch.zeros(2, 1, 32, 32)).shape == (2, expected)


def test_compact_forward_returns_named_outputs():
    model = MTMRNet(MTMRNetConfig.compact()).eval()
    out = model(torch.randn(4, 1, 64, 64))
    assert out["attributes"].shape == (4, len(ATTRIBUTE_NAMES))
    assert out["logits"].shape == (4, 2)
    assert torch.all((out["attributes"] > 0) & (out["attributes"] < 1))
    assert torch.allclose(out["malignancy"], torch.softmax(out["logits"], 1)[:, 1])


def test_paper_config_is_the_authors():
    config = MTMRNetConfig.paper()
    model = MTMRNet(config)
    assert (config.depth, config.input_size, config.in_channels) == (50, 224, 3)
    assert model.trunk.feature_dim == 2048 and model.classifier.in_features == 2048 + 256
    assert model.config.dropout == 0.5


def test_head_parameters_exclude_the_trunk():
    model = MTMRNet()
    heads = {id(p) for p in model.head_parameters()}
    assert heads and not heads & {id(p) for p in model.trunk.parameters()}
    assert len(heads) + len(list(model.trunk.parameters())) == len(list(model.parameters()))


def test_ranking_sign_margin_and_ties():
    labels = torch.tensor([1, 0, 1, 0, 1, 1])  # pairs (0,3): 1>0, (1,4): 0<1, (2,5): tie -> skipped
    good = torch.tensor([2.0, -2.0, 5.0, -2.0, 2.0, -9.0])
    assert ranking_loss(good, labels, 0.1) == 0
    wrong = torch.tensor([0.0, 0.0, 5.0, 0.5, -0.5, -9.0])  # both valid pairs ordered the wrong way
    assert ranking_loss(wrong, labels, 0.1).item() == pytest.approx(0.6)  # (0.1+0.5 + 0.1+0.5) / 2
    inside_margin = torch.tensor([0.05, 0.0, 0.0, 0.0, 0.05, 0.0])
    assert ranking_loss(inside_margin, labels, 0.1).item() == pytest.approx(0.05)
    assert ranking_loss(good, torch.tensor([1, 1, IGNORE, 1, 1, 0]), 0.1) == 0  # ties and ignored only


def test_attribute_loss_weights_and_masking():
    predicted = torch.zeros(2, 8)
    target = torch.zeros(2, 8)
    target[:, ATTRIBUTE_NAMES.index("spiculation")] = 1.0
    assert attribute_loss(predicted, target, ("spiculation",)).item() == pytest.approx(2.0)
    assert attribute_loss(predicted, target, ()).item() == pytest.approx(1.0)
    target[0, :] = math.nan
    assert attribute_loss(predicted, target, ()).item() == pytest.approx(1.0)  # mean over known only


def test_indeterminate_nodules_train_only_the_attributes():
    model = MTMRNet().train()
    outputs = model(torch.randn(4, 1, 64, 64))
    labels = torch.full((4,), IGNORE)
    parts = mtmr_loss(outputs, labels, torch.full((4, 8), 0.5), LossConfig())
    assert parts["classification"] == 0 and parts["ranking"] == 0 and parts["attributes"] > 0
    parts["total"].backward()
    assert model.classifier.weight.grad is None or torch.all(model.classifier.weight.grad == 0)
    assert model.attribute_heads[0].weight.grad.abs().sum() > 0


def test_total_is_the_weighted_sum():
    outputs = MTMRNet().eval()(torch.randn(4, 1, 64, 64))
    config = LossConfig(classification=1.0, ranking=2.0, attributes=3.0)
    parts = mtmr_loss(outputs, torch.tensor([1, 0, 0, 1]), torch.rand(4, 8), config)
    expected = parts["classification"] + 2 * parts["ranking"] + 3 * parts["attributes"]
    assert parts["total"].item() == pytest.approx(expected.item())


def test_marker_diameter_reaches_only_the_malignancy_branch():
    torch.manual_seed(0)
    model = MTMRNet(MTMRNetConfig.compact()).eval()
    x = torch.randn(2, 1, 64, 64)
    small, large = model(x, torch.tensor([5.0, 5.0])), model(x, torch.tensor([25.0, 25.0]))
    assert not torch.allclose(small["logits"], large["logits"])
    assert torch.allclose(small["attributes"], large["attributes"])  # attributes come from the image
    assert torch.allclose(
        model(x)["logits"], model(x, torch.tensor([10.0, 10.0]))["logits"]
    )  # missing = 10 mm
    paper = MTMRNet(MTMRNetConfig(depth=18, width=8, input_size=32, size_input=False)).eval()
    y = torch.randn(2, 1, 32, 32)
    assert torch.allclose(
        paper(y, torch.tensor([5.0, 5.0]))["logits"], paper(y, torch.tensor([30.0, 3.0]))["logits"]
    )


def test_attribute_order_matches_the_lidc_records():
    from core.nodule.ratings import ATTRIBUTES

    assert ATTRIBUTE_NAMES == ATTRIBUTES  # models/ keeps its own copy so it never imports core/
