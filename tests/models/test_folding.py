"""BatchNorm folding: the folded copy computes the backbone's function, pairs are found by
data flow, the backbone is never modified, and changed weights are never served stale."""

import copy

import pytest
import torch
import torchvision
from torch import nn

from robustlens.models.folding import BatchNormFolding
from robustlens.models.zoo_archs import MLPMixer, PlainCNN, SmallResNet


def _randomize_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Statistics and affine parameters far from the identity, so that a BatchNorm left out
    or folded wrongly changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 3 + 0.2)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
    return module.eval()


def _inputs(shape=(6, 3, 32, 32), seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5 * float(a.abs().max()))


@pytest.mark.parametrize(
    ("backbone", "pairs", "shape"),
    [
        (PlainCNN(8), 3, (6, 3, 32, 32)),
        (SmallResNet(8), 9, (6, 3, 32, 32)),  # 2 per block + 1 per projection shortcut + stem
        (torchvision.models.resnet18(), 20, (2, 3, 64, 64)),
    ],
    ids=["zoo-cnn", "zoo-resnet", "torchvision-resnet18"],
)
def test_the_folded_copy_computes_the_backbones_function(backbone, pairs, shape):
    backbone = _randomize_batchnorm(backbone)
    x = _inputs(shape)
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    folding = BatchNormFolding.of(backbone)
    assert folding is not None and folding.folded_pairs == pairs
    folded = folding.refresh()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        own, theirs = backbone(x), folded(x)
    assert _same(own, theirs)
    # the backbone is untouched: the same weights, its BatchNorms still there and still used
    after = backbone.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in backbone.modules()) == pairs


def test_the_copy_follows_weights_changed_in_place_even_through_data():
    backbone = _randomize_batchnorm(PlainCNN(8))
    folding = BatchNormFolding.of(backbone)
    x = _inputs()
    with torch.no_grad():
        before = folding.refresh()(x)
        conv, bn = backbone.features[0], backbone.features[1]
        # ``.data`` has a version counter of its own: a cache keyed on ``_version`` misses it
        conv.weight.data.mul_(-2.0)
        bn.running_var.data.mul_(4.0)
        bn.bias.data.add_(1.0)
        assert folding.matches(backbone)
        own, theirs = backbone(x), folding.refresh()(x)
    assert not _same(before, own)
    assert _same(own, theirs)


class _NormThenConv(nn.Module):
    """Registers a conv, then a BatchNorm, but applies the BatchNorm first: the order in
    which modules were registered says nothing about the data flow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        return self.conv(self.bn(x))


class _ConvUsedTwice(nn.Module):
    """The conv's output feeds the BatchNorm and a skip connection: folding would change
    the skip connection's input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class _ScaledBatchNorm(nn.BatchNorm2d):
    """A BatchNorm subclass that computes more than the affine map (as timm's BatchNormAct2d
    adds an activation)."""

    def forward(self, x):
        return torch.relu(super().forward(x))


class _SubclassNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = _ScaledBatchNorm(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv2(self.bn(self.conv(x))))


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if float(y.mean()) > 0 else -y  # depends on the values: cannot be traced


def test_pairs_are_found_by_data_flow_and_only_where_folding_is_exact():
    for module in (_NormThenConv(), _ConvUsedTwice()):
        assert BatchNormFolding.of(_randomize_batchnorm(module)) is None, type(module)
    mixed = _randomize_batchnorm(_SubclassNorm())
    with torch.no_grad():  # the subclass's statistics too, so that a wrong fold shows
        mixed.bn.running_var.uniform_(0.5, 2)
    folding = BatchNormFolding.of(mixed)
    assert folding is not None and folding.folded_pairs == 1  # conv2-bn2 only
    x = _inputs((4, 3, 8, 8))
    with torch.no_grad():
        assert _same(mixed(x), folding.refresh()(x))
    # nothing to fold, or a backbone that cannot be traced: run as it is
    assert BatchNormFolding.of(MLPMixer(16).eval()) is None
    assert BatchNormFolding.of(_randomize_batchnorm(_DataDependent())) is None


def test_batchnorm_in_training_mode_or_hooks_are_not_folded():
    backbone = _randomize_batchnorm(PlainCNN(8))
    assert BatchNormFolding.of(copy.deepcopy(backbone).train()) is None
    hooked = copy.deepcopy(backbone)
    hooked.features[4].register_forward_hook(lambda *_: None)
    assert BatchNormFolding.of(hooked) is None


def test_modules_that_hold_no_batchnorm_run_as_they_are():
    """The trace enters only the modules on the way to a BatchNorm: a module whose forward
    does more than tensor operations (here: counts its calls) still does it."""

    class Counting(nn.Module):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return x * 2

    backbone = nn.Sequential(Counting(), _randomize_batchnorm(PlainCNN(8)))
    folded = BatchNormFolding.of(backbone).refresh()
    Counting.calls = 0
    with torch.no_grad():
        folded(_inputs())
        folded(_inputs())
    assert Counting.calls == 2


class _Scaled(nn.Module):
    """A traced module (it holds the BatchNorm) with a flag, a parameter and a buffer of its
    own that its forward reads."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.gain = nn.Parameter(torch.tensor(2.0))
        self.register_buffer("offset", torch.tensor(0.5))
        self.negate = False

    def forward(self, x):
        y = self.bn(self.conv(x)) * self.gain + self.offset
        return -y if self.negate else y


@pytest.mark.parametrize(
    "change",
    [
        lambda m: setattr(m, "negate", True),
        lambda m: setattr(m, "gain", nn.Parameter(torch.tensor(3.0))),
        lambda m: setattr(m, "offset", torch.tensor(1.5)),
        lambda m: setattr(m, "forward", lambda x: x),
        lambda m: setattr(m, "bn", nn.BatchNorm2d(4).eval()),
        lambda m: setattr(m.conv, "dilation", (2, 2)),
    ],
    ids=[
        "flag",
        "parameter-replaced",
        "buffer-replaced",
        "forward-replaced",
        "child-replaced",
        "folded-conv-dilation",
    ],
)
def test_matches_sees_what_a_trace_kept_change(change):
    module = _randomize_batchnorm(_Scaled())
    folding = BatchNormFolding.of(module)
    x = _inputs((2, 3, 8, 8))
    with torch.no_grad():
        module.gain.mul_(5.0)  # values changed in place: the copy reads them, still matches
        module.offset.add_(1.0)
        assert folding.matches(module) and _same(module(x), folding.refresh()(x))
        change(module)
        assert not folding.matches(module)


def test_matches_sees_a_swapped_module_a_new_hook_and_training_mode():
    backbone = _randomize_batchnorm(PlainCNN(8))
    folding = BatchNormFolding.of(backbone)
    assert folding.matches(backbone)
    swapped = copy.deepcopy(backbone)
    folding = BatchNormFolding.of(swapped)
    swapped.features[3] = nn.AvgPool2d(2)
    assert not folding.matches(swapped)
    folding = BatchNormFolding.of(backbone)
    handle = backbone.features[2].register_forward_pre_hook(lambda *_: None)
    assert not folding.matches(backbone)
    handle.remove()
    assert folding.matches(backbone)
    backbone.features[1].train()
    assert not folding.matches(backbone)
