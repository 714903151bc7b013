"""Tests of robustlens.transforms.adversarial (PGD in pixel space)."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
from torch import nn

from robustlens.errors import ValidationError
from robustlens.transforms.adversarial import SEED002_PGD, pgd_attack


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Easy task on 3x8x8 pixels: is the left half brighter than the right half?"""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.5 + 0.15 * torch.randn(n, 3, 8, 8, generator=g)
    sign = (y.float() * 2 - 1).view(-1, 1, 1, 1)
    x[..., :4] += 0.03 * sign
    x[..., 4:] -= 0.03 * sign
    return x.clamp(0, 1), y


def _trained_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.ReLU(), nn.Linear(32, 2))
    x, y = _task(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model


@pytest.fixture(scope="module")
def trained():
    model = _trained_model()
    x, y = _task(256, seed=2)
    return model, x, y


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_defaults_are_seed_002_setting():
    assert SEED002_PGD == {"eps": 0.5 / 255, "step": 2 / 255, "steps": 40, "norm": "linf"}
    params = inspect.signature(pgd_attack).parameters
    assert params["eps"].default == 0.5 / 255
    assert params["step"].default == 2 / 255
    assert params["steps"].default == 40
    assert params["random_start"].default is True
    assert params["norm"].default == "linf"


def test_eps_zero_changes_nothing(trained):
    model, x, y = trained
    out = pgd_attack(model, x, y, eps=0.0, step=0.1, steps=10)
    assert torch.equal(out, x)
    assert out is not x


def test_accuracy_falls_monotonically_with_eps(trained):
    model, x, y = trained
    clean = _acc(model, x, y)
    assert clean > 0.9
    eps_grid = [0.0, 0.005, 0.01, 0.02, 0.04, 0.08]
    accs = [
        _acc(model, pgd_attack(model, x, y, eps=e, step=e / 4, steps=10, random_start=False), y)
        for e in eps_grid
    ]
    assert accs[0] == clean
    assert all(b <= a for a, b in itertools.pairwise(accs)), accs
    assert accs[-1] < 0.2
    assert len(set(accs)) >= 4  # a gradual decline, not a single cliff


def test_pgd_beats_random_noise_of_the_same_size(trained):
    model, x, y = trained
    eps = 0.02
    noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * eps
    acc_noise = _acc(model, (x + noise).clamp(0, 1), y)
    acc_pgd = _acc(model, pgd_attack(model, x, y, eps=eps, step=eps / 4, steps=10), y)
    assert acc_pgd < acc_noise - 0.1


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_in_ball_and_pixel_range(trained, norm):
    model, x, y = trained
    eps = 0.05 if norm == "linf" else 0.5
    out = pgd_attack(model, x, y, eps=eps, step=eps / 2, steps=5, norm=norm, seed=3)
    d = (out - x).flatten(1)
    size = d.abs().max(dim=1).values if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(size.mean()) > 0.5 * eps  # it actually moved
    assert not out.requires_grad


def test_model_state_and_gradients_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(256, 2)
    )
    model[0].weight.requires_grad_(False)  # a frozen layer stays frozen
    model.train()
    running = model[1].running_mean.clone()
    x, y = _task(16, seed=3)
    with torch.no_grad():  # works inside no_grad: gradients are enabled locally
        pgd_attack(model, x, y, eps=0.03, step=0.01, steps=3)
    assert model.training
    assert torch.equal(model[1].running_mean, running)  # attacked in eval mode
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    assert all(p.grad is None for p in model.parameters())


def test_random_start_is_seeded(trained):
    model = trained[0]
    x, y = _task(4, seed=4)
    a = pgd_attack(model, x, y, eps=0.05, step=0.01, steps=0, seed=1)
    assert torch.equal(a, pgd_attack(model, x, y, eps=0.05, step=0.01, steps=0, seed=1))
    assert not torch.equal(a, pgd_attack(model, x, y, eps=0.05, step=0.01, steps=0, seed=2))
    assert torch.equal(pgd_attack(model, x, y, 0.05, 0.01, 0, random_start=False), x)
    # per-sample seeds: the start does not depend on the batch it is in
    seeds = torch.tensor([10, 11, 12, 13])
    batch = pgd_attack(model, x, y, 0.05, 0.01, 3, seed=seeds)
    alone = torch.cat(
        [
            pgd_attack(model, x[i : i + 1], y[i : i + 1], 0.05, 0.01, 3, seed=seeds[i : i + 1])
            for i in range(4)
        ]
    )
    torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)


def test_validation_errors(trained):
    model = trained[0]
    x, y = _task(4, seed=5)
    with pytest.raises(ValidationError, match=r"labels: expected shape \(4,\)"):
        pgd_attack(model, x, y[:3], 0.01, 0.01, 1)
    with pytest.raises(ValidationError, match="'linf' or 'l2'"):
        pgd_attack(model, x, y, 0.01, 0.01, 1, norm="l1")
    with pytest.raises(ValidationError, match="eps"):
        pgd_attack(model, x, y, -0.01, 0.01, 1)
    with pytest.raises(ValidationError, match=r"nn\.Module"):
        pgd_attack(lambda t: t, x, y, 0.01, 0.01, 1)
    with pytest.raises(ValidationError, match="integer class"):
        pgd_attack(model, x, y.float(), 0.01, 0.01, 1)
