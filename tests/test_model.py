"""The two presets: architecture, parameter count, loss terms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from electric_sheep.core.layers import SubPixelConvTranspose2d, training_layout
from electric_sheep.core.model import (
    ConvVAE,
    ModelConfig,
    SeedVAE,
    build_model,
    count_parameters,
)
from electric_sheep.errors import ConfigError


def test_seed_preset_has_the_posts_keras_parameter_count():
    model = build_model(ModelConfig(preset="seed"))
    assert isinstance(model, SeedVAE)
    assert count_parameters(model) == 12_857_495  # the post's Keras summary


@pytest.mark.parametrize(("c_in", "c_out"), [(32, 1), (64, 32), (3, 5)])
def test_sub_pixel_transposed_conv_is_the_transposed_conv(c_in, c_out):
    """Same parameters, same outputs and gradients as nn.ConvTranspose2d(4, stride 2, padding 1)."""
    torch.manual_seed(0)
    reference = torch.nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1).double()
    fast = SubPixelConvTranspose2d(c_in, c_out).double()
    fast.load_state_dict(reference.state_dict())  # the same state_dict: old checkpoints load
    x = torch.randn(3, c_in, 7, 9, dtype=torch.float64, requires_grad=True)
    y_ref, y = reference(x), fast(x)
    assert y.shape == (3, c_out, 14, 18)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), y_ref)  # inference's layout
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, reference.weight, reference.bias])
    g = torch.autograd.grad(y.square().sum(), [x, fast.weight, fast.bias])
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("preset", ["seed", "default"])
@pytest.mark.parametrize("latent_dim", [2, 5])
def test_shapes(preset, latent_dim):
    model = build_model(ModelConfig(preset=preset, latent_dim=latent_dim)).eval()
    x = torch.rand(4, 1, 28, 28)
    out = model(x)
    assert out.x_hat.shape == (4, 1, 28, 28) and out.mean.shape == (4, latent_dim) and out.z.shape == (4, latent_dim)
    assert 0 <= out.x_hat.min() and out.x_hat.max() <= 1
    assert model.decode(torch.zeros(3, latent_dim)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_training_layout_gives_each_gradient_its_weights_strides(preset):
    """DistributedDataParallel copies every gradient into a view laid out like its weight, and
    warns (slow path) when the two differ; the channels-last layout must keep them alike."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset=preset))
    training_layout(model)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    model.loss(torch.rand(4, 1, 28, 28)).total.backward()
    for name, p in model.named_parameters():
        assert p.grad.stride() == p.stride(), name


def test_kl_per_dim_hand_computed():
    mean = torch.tensor([[1.0, 0.0]])
    log_var = torch.tensor([[0.0, math.log(2.0)]])
    kl = SeedVAE.kl_per_dim(mean, log_var)
    # 0.5 * (var + mean^2 - 1 - log var): (1 + 1 - 1 - 0) / 2 and (2 + 0 - 1 - log 2) / 2
    torch.testing.assert_close(kl, torch.tensor([[0.5, 0.5 * (1 - math.log(2.0))]]))


def test_seed_loss_is_the_posts_formula_and_keeps_its_sampling_quirk():
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="seed")).eval()  # eval: dropout off, BN running stats
    x = torch.rand(3, 1, 28, 28)
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)
    terms = model.loss(x, kl_weight=0.3)
    mse = ((x - out.x_hat) ** 2).mean()
    kl = (-0.5 * (1 + out.log_var - out.mean**2 - out.log_var.exp())).mean()  # mean over dims and batch
    torch.testing.assert_close(terms.recon, 2 * 28 * 28 * mse)
    torch.testing.assert_close(terms.kl, kl)
    torch.testing.assert_close(terms.total, 2 * 28 * 28 * mse + 0.3 * kl)
    log_var = torch.tensor([[0.5, -1.0]])
    torch.testing.assert_close(model.posterior_std(log_var), log_var.exp())  # the post: exp(log_var)


def test_default_loss_is_the_bernoulli_elbo():
    torch.manual_seed(0)
    model = build_model(ModelConfig()).eval()
    assert isinstance(model, ConvVAE)
    x = torch.rand(3, 1, 28, 28)
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)
    terms = model.loss(x, kl_weight=0.5)
    p = out.x_hat
    bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1).mean()
    kl = (0.5 * (out.log_var.exp() + out.mean**2 - 1 - out.log_var)).sum(1).mean()
    torch.testing.assert_close(terms.recon, bce, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(terms.kl, kl)
    torch.testing.assert_close(terms.total, terms.recon + 0.5 * kl)
    log_var = torch.tensor([[0.5, -1.0]])
    torch.testing.assert_close(model.posterior_std(log_var), (0.5 * log_var).exp())


def test_free_bits_floor_the_kl_that_is_minimised():
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=3)).eval()
    x = torch.rand(2, 1, 28, 28)
    torch.manual_seed(1)
    plain = model.loss(x, 1.0)
    torch.manual_seed(1)
    floored = model.loss(x, 1.0, free_bits=5.0)  # far above a fresh model's KL per dim
    torch.testing.assert_close(floored.total, plain.recon + 3 * 5.0)
    torch.testing.assert_close(floored.kl, plain.kl)  # the reported KL is the true one


def test_unknown_model_options_are_rejected():
    with pytest.raises(ConfigError, match="unknown model option"):
        ModelConfig.from_dict({"preset": "default", "latnet_dim": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        ModelConfig(preset="big")  # type: ignore[arg-type]


def test_fast_inference_gives_the_model_back_as_it_was():
    from electric_sheep.core.infer import fast_inference
    from electric_sheep.core.model import make_model_config

    model = build_model(make_model_config("default"))
    training_layout(model)
    model.train()
    before = {name: (p.is_contiguous(), p.is_contiguous(memory_format=torch.channels_last)) for name, p in
              model.named_parameters()}  # fmt: skip
    with fast_inference(model):
        assert not model.training
    assert model.training
    after = {name: (p.is_contiguous(), p.is_contiguous(memory_format=torch.channels_last)) for name, p in
             model.named_parameters()}  # fmt: skip
    assert after == before


def test_drawings_from_a_memory_mapped_file_become_tensors_without_a_warning(tmp_path):
    """A read-only array (a .npy opened memory-mapped, as every command opens DATA) is shared, not
    copied (a file may be larger than memory), and torch's read-only warning is not shown."""
    import warnings

    import numpy as np

    from electric_sheep.core.infer import drawings_tensor

    path = tmp_path / "d.npy"
    np.save(path, np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28))
    mapped = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = drawings_tensor(mapped)
    assert tensor.dtype == torch.uint8 and torch.equal(tensor, torch.from_numpy(np.array(mapped)))
    assert np.shares_memory(tensor.numpy(), mapped)
