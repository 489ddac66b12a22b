import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agwm.mixup import MixupLinear, project_alphas


def layer(formulation="factored", rank=1, **kwargs):
    torch.manual_seed(0)
    return MixupLinear(nn.Linear(5, 3), rank=rank, formulation=formulation, **kwargs)


def randomise(m: MixupLinear):
    with torch.no_grad():
        m.A.uniform_(0, 1)
        m.B.uniform_(0, 1)
        m.weight.add_(torch.randn_like(m.weight))


@pytest.mark.parametrize("rank", [1, 2, 8])
def test_factored_formula(rank):
    m = layer("factored", rank)
    randomise(m)
    w0 = m.base_layer.weight
    expected = (m.A @ m.B / rank) * m.weight + ((1 - m.A) @ (1 - m.B) / rank) * w0
    torch.testing.assert_close(m.mixed_weight(), expected)
    x = torch.randn(4, 5)
    torch.testing.assert_close(m(x), F.linear(x, expected, m.base_layer.bias))


def test_convex_formula():
    m = layer("convex", 2)
    randomise(m)
    alpha = m.A @ m.B / 2
    torch.testing.assert_close(m.mixed_weight(), alpha * m.weight + (1 - alpha) * m.base_layer.weight)


def test_starts_from_the_pretrained_weight_and_freezes_it():
    m = layer()
    torch.testing.assert_close(m.weight, m.base_layer.weight)
    assert m.weight is not m.base_layer.weight
    assert not m.base_layer.weight.requires_grad
    assert m.base_layer.bias.requires_grad and m.weight.requires_grad and m.A.requires_grad


def test_initialisation_is_clamped_normal():
    m = MixupLinear(nn.Linear(400, 300), init_mean=1.0, init_std=0.005, generator=torch.Generator().manual_seed(0))
    a = m.A.detach()
    assert a.min() >= 0 and a.max() == 1.0  # half the draws exceed 1 and are clamped
    assert 0.4 < (a == 1.0).float().mean() < 0.6
    m = MixupLinear(nn.Linear(400, 300), init_mean=0.5, init_std=0.1, generator=torch.Generator().manual_seed(0))
    b = m.B.detach()
    assert abs(b.mean().item() - 0.5) < 0.02 and abs(b.std().item() - 0.1) < 0.02


def test_alpha_one_gives_the_task_weight():
    m = layer(init_std=0.0)
    with torch.no_grad():
        m.weight.add_(1.0)
    torch.testing.assert_close(m.mixed_weight(), m.weight)


def test_gradients_reach_w_and_the_factors_but_not_w0():
    m = layer()
    randomise(m)
    m(torch.randn(4, 5)).pow(2).sum().backward()
    assert m.weight.grad is not None and m.A.grad is not None and m.B.grad is not None
    assert m.base_layer.weight.grad is None


@pytest.mark.parametrize("formulation", ["factored", "convex"])
def test_frozen_factors_give_the_same_weight_and_gradient_from_a_cache(formulation):
    m = layer(formulation, rank=2)
    randomise(m)
    x = torch.randn(4, 5)
    m(x).pow(2).sum().backward()
    expected, expected_grad = m.mixed_weight().detach(), m.weight.grad.clone()
    m.zero_grad(set_to_none=True)
    m.A.requires_grad_(False)
    m.B.requires_grad_(False)
    m(x).pow(2).sum().backward()
    torch.testing.assert_close(m.mixed_weight(), expected)
    torch.testing.assert_close(m.weight.grad, expected_grad)
    assert m.A.grad is None
    assert m._fixed_mixing_terms()[0] is m._fixed_mixing_terms()[0]  # computed once


def test_the_cache_follows_changes_of_frozen_factors():
    m = layer(rank=2)
    randomise(m)
    m.A.requires_grad_(False)
    m.B.requires_grad_(False)
    m.mixed_weight()
    with torch.no_grad():
        m.A.mul_(0.5)  # as load_alphas / project_alphas change them: in place
    expected = (m.A @ m.B / 2) * m.weight + ((1 - m.A) @ (1 - m.B) / 2) * m.base_layer.weight
    torch.testing.assert_close(m.mixed_weight(), expected)
    m.to(torch.float64)
    assert m.mixed_weight().dtype == torch.float64
    m.A.requires_grad_(True)
    m.mixed_weight().sum().backward()
    assert m.A.grad is not None  # trained factors are never taken from the cache


def test_projection_clamps_to_the_unit_box():
    a = torch.tensor([-0.5, 0.3, 1.7])
    project_alphas([a])
    assert a.tolist() == pytest.approx([0.0, 0.3, 1.0])


@pytest.mark.parametrize("kwargs, message", [({"rank": 0}, "rank"), ({"formulation": "sum"}, "formulation")])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MixupLinear(nn.Linear(2, 2), **kwargs)


@pytest.mark.parametrize("rank", [1, 3])
def test_mixing_means_equal_the_means_of_the_full_matrices(rank):
    from agwm.mixup import mixing_means

    g = torch.Generator().manual_seed(rank)
    a, b = torch.rand(6, rank, generator=g, dtype=torch.float64), torch.rand(rank, 9, generator=g, dtype=torch.float64)
    alpha, w0_weight = mixing_means(a, b, rank)
    assert alpha == pytest.approx((a @ b / rank).mean().item(), rel=1e-12)
    assert w0_weight == pytest.approx(((1 - a) @ (1 - b) / rank).mean().item(), rel=1e-12)
    assert mixing_means(a, b, rank, "convex") == (alpha, pytest.approx(1 - alpha, rel=1e-12))
