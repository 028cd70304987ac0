"""The default preset's drawing machinery: pixel head, renderer, fitted prior, flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from electric_sheep.analysis import generate
from electric_sheep.analysis.evaluate import evaluate_model
from electric_sheep.core import pixels
from electric_sheep.core.batches import random_flip
from electric_sheep.core.infer import fast_inference
from electric_sheep.core.model import build_model, make_model_config
from electric_sheep.core.pixels import PixelHead, Renderer, flip_pixels, pixel_noise
from electric_sheep.core.prior import CodePrior
from electric_sheep.core.train_config import make_train_config
from electric_sheep.core.trainer import fit_prior
from electric_sheep.errors import ConfigError


def _head(seed: int = 0, context: int = 5) -> PixelHead:
    torch.manual_seed(seed)
    head = PixelHead(8, context)
    for p in head.parameters():  # large weights: every neighbour matters to the logits
        torch.nn.init.normal_(p, std=1.0)
    return head


@pytest.mark.parametrize("context", [5, 9])
def test_pixel_head_sees_only_the_pixels_before_each_pixel(context):
    head, base = _head(context=context), torch.randn(2, 1, 28, 28)
    drawn = (torch.rand(2, 1, 28, 28) > 0.7).float()
    i, j = 13, 9
    later = drawn.clone()
    later[:, :, i, j:] = 1 - later[:, :, i, j:]  # this pixel and the rest of its row
    later[:, :, i + 1 :] = 1 - later[:, :, i + 1 :]  # and every row below
    with torch.no_grad():
        a, b = head(base, drawn), head(base, later)
    assert torch.equal(a[:, :, i, j], b[:, :, i, j])
    assert not torch.equal(a[:, :, i, j + 1], b[:, :, i, j + 1])  # it does see the pixel to its left


@pytest.mark.parametrize("context", [5, 9])
def test_sampling_pixel_by_pixel_agrees_with_the_teacher_forced_pass(context):
    head, base = _head(1, context), torch.randn(3, 1, 28, 28)
    noise = pixel_noise(3, seed=2)
    with torch.no_grad():
        drawn = head.sample(base, noise)
        p = torch.sigmoid(head(base, drawn))[:, 0]
    assert set(drawn.unique().tolist()) <= {0.0, 1.0} and 0 < drawn.mean() < 1
    # Every sampled pixel is exactly what its probability given the pixels before it says.
    assert torch.equal(drawn[:, 0].bool(), noise < p)


def _both_passes(head, base, drawn, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's logits fused and layer by layer, in inference."""
    with torch.no_grad():
        seen = torch.zeros(len(base), 8, 28, 28, dtype=base.dtype).contiguous(memory_format=torch.channels_last)
        assert pixels.fusable(base, seen)
        fused = head(base, drawn)
        with monkeypatch.context() as m:
            m.setattr(pixels, "fusable", lambda *a: False)
            return fused, head(base, drawn)


def test_the_fused_inference_pass_is_the_layer_by_layer_one(monkeypatch):
    """In inference (channels-last, as fast_inference runs it) the head's first layers run as
    convolutions that add and rectify as they write: in float32 the same logits to the bit as layer
    by layer, in bfloat16 the same up to its rounding; with a gradient wanted, k codes a drawing or
    the contiguous layout, layer by layer."""
    head = _head(3, 9).to(memory_format=torch.channels_last)
    base = torch.randn(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    drawn = (torch.rand(64, 1, 28, 28) > 0.7).float().contiguous(memory_format=torch.channels_last)
    fused, layered = _both_passes(head, base, drawn, monkeypatch)
    assert torch.equal(fused, layered)
    seen = torch.zeros(64, 8, 28, 28).contiguous(memory_format=torch.channels_last)
    assert not pixels.fusable(base.repeat(2, 1, 1, 1), seen)  # k = 2 codes a drawing
    assert not pixels.fusable(base, seen.contiguous())
    with torch.enable_grad():
        assert not pixels.fusable(base, seen)
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused, layered = _both_passes(head, base.bfloat16(), drawn.bfloat16(), monkeypatch)
        assert fused.dtype == torch.bfloat16
        assert (fused.float() - layered.float()).abs().max() <= 4 * 2**-8 * layered.float().abs().max()


def test_sampling_runs_on_one_cpu_thread_and_gives_the_others_back(monkeypatch):
    """784 steps of tiny products, where on a busy machine a second thread waits on the first at
    every step (docs/performance.md). The caller's threads are restored."""
    head, base, noise = _head(1, 9), torch.randn(2, 1, 28, 28), pixel_noise(2, seed=1)
    seen, inner = [], PixelHead._sample

    def sample(self, *args):
        seen.append(torch.get_num_threads())
        return inner(self, *args)

    monkeypatch.setattr(PixelHead, "_sample", sample)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            drawn = head.sample(base, noise)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with torch.no_grad():
        assert torch.equal(drawn, inner(head, base, noise, 1.0))  # the same drawing with any threads


def test_a_cooler_pixel_temperature_draws_the_likelier_pixels():
    head, base = _head(3), torch.randn(2, 1, 28, 28)
    noises = [pixel_noise(2, seed=s) for s in (4, 5)]
    with torch.no_grad():
        cold = [head.sample(base, n, temperature=1e-6) for n in noises]
        warm = [head.sample(base, n) for n in noises]
        p = torch.sigmoid(head(base, cold[0]))
    # Near zero the noise no longer matters: every pixel is the likelier one given those before it.
    assert torch.equal(cold[0], cold[1]) and not torch.equal(warm[0], warm[1])
    assert torch.equal(cold[0].bool(), p > 0.5)


def test_of_several_candidates_the_one_its_plan_explains_best_per_ink_is_kept():
    plan = torch.full((2, 1, 28, 28), -4.0)
    plan[:, :, 8:20, 6:22] = 4.0  # the decoder plans a body here
    body, tangle = torch.zeros(1, 28, 28), torch.zeros(1, 28, 28)
    body[:, 9:19, 7:21] = 1.0  # ink inside the plan
    tangle[:, 9:19, 7:21] = 1.0
    tangle[:, 0:6, 0:28:2] = 1.0  # and strokes where the plan has paper
    drawn = torch.stack([torch.stack([tangle, body]), torch.stack([body, tangle])])  # (M=2, B=2, 1, 28, 28)
    kept = build_model(make_model_config("default")).closest_to_plan(plan, drawn)
    assert torch.equal(kept, torch.stack([body, body]))
    # A sparse drawing whose few pixels fit does not beat a full one for having less ink to explain.
    sparse = body.clone()
    sparse[:, 9:19, 7:21] = 0.0
    sparse[:, 9:19:3, 7:21] = 1.0  # a few rows of the body, the rest left as paper the plan called ink
    assert torch.equal(
        build_model(make_model_config("default")).closest_to_plan(plan[:1], torch.stack([sparse, body])[:, None]),
        body[None],
    )


def test_new_drawings_are_the_best_of_several_samples_and_one_candidate_is_the_plain_sample():
    model = build_model(make_model_config("default"))
    z = generate.prior_codes(model, 5, seed=1)
    one = generate.decode_codes(model, z, seed=2)
    assert np.array_equal(one, generate.decode_codes(model, z, seed=2, candidates=1))
    with fast_inference(model):  # the plain sample: the pixel head with the seed's noise, as before candidates
        plain = model.decode(torch.from_numpy(z), pixel_noise(5, seed=2))[:, 0].float().numpy()
    assert np.array_equal(one, plain)
    best = generate.decode_codes(model, z, seed=2, candidates=4)
    assert best.shape == one.shape and not np.array_equal(best, one)
    assert np.array_equal(
        generate.draw(model, 5, seed=1), generate.draw(model, 5, seed=1, candidates=generate.CANDIDATES)
    )


class _Blur(torch.nn.Module):
    """A renderer's stand-in: ink and paper, grey where a 3x3 neighbourhood is mixed."""

    def forward(self, drawn: torch.Tensor) -> torch.Tensor:
        return 8 * (torch.nn.functional.avg_pool2d(drawn, 3, 1, 1, count_include_pad=False) - 0.5)


def test_the_temperature_is_read_off_the_drawings_the_model_learned_from():
    torch.manual_seed(0)
    model = build_model(make_model_config("default"))
    # weights whose logits are neither saturated nor flat: each step of the temperature grid changes
    # the grey share more than another seed of the drawings does
    for p in model.pixel_head.parameters():
        torch.nn.init.normal_(p, std=0.5)
    model.renderer = _Blur()  # an untrained renderer draws every pixel grey
    for t in (0.5, 1.0):
        model.calibrated.fill_(t)
        own = np.round(generate.draw(model, 300, seed=7) * 255).astype(np.uint8)  # drawings as it draws at t
        model.calibrated.fill_(0.8)
        assert generate.calibrate_temperature(model, own, seed=1) == t
        assert model.pixel_temperature == t
    with pytest.raises(ConfigError, match="calibrated_temperature"):
        generate.calibrate_temperature(build_model(make_model_config("default", calibrated_temperature=False)), own)


def test_training_calibrates_the_temperature_and_the_run_keeps_it(tmp_path):
    from electric_sheep.runs.checkpoint import load_model, read_metrics
    from electric_sheep.runs.training import train

    drawings = np.zeros((80, 28, 28), np.uint8)
    drawings[:, 8:20, 6:22] = 255
    cfg = make_train_config("default", epochs=1, batch_size=16, val_limit=16, kl_schedule="constant")
    train(drawings[:64], drawings[64:], make_model_config("default"), cfg, tmp_path, progress=False, log=lambda s: None)
    chosen = read_metrics(tmp_path)[-1]["pixel_temperature"]
    assert chosen in generate.TEMPERATURES and load_model(tmp_path).pixel_temperature == chosen


def test_context_noise_flips_that_share_of_the_head_s_context_while_training():
    torch.manual_seed(0)
    drawn = (torch.rand(64, 1, 28, 28) > 0.8).float()
    assert flip_pixels(drawn, 0.0) is drawn
    flipped = flip_pixels(drawn, 0.2)
    assert set(flipped.unique().tolist()) <= {0.0, 1.0}
    assert float((flipped != drawn).float().mean()) == pytest.approx(0.2, abs=0.01)
    model, x = build_model(make_model_config("default")), torch.rand(4, 1, 28, 28)
    z = torch.randn(4, 16)
    with torch.no_grad():
        clean = model.likelihood_logits(z, x)
        assert torch.equal(clean, model.likelihood_logits(z, x))  # evaluation: the drawing as it is
        assert not torch.equal(clean, model.likelihood_logits(z, x, context_noise=0.2))
    for bad in (-0.1, 0.5):
        with pytest.raises(ConfigError, match="context_noise"):
            make_train_config("default", context_noise=bad)


def test_renderer_learns_to_draw_binarised_lines_grey_at_their_edges():
    torch.manual_seed(0)
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 10:18, 13] = 1.0  # a line's core ...
    x[:, :, 10:18, 12] = x[:, :, 10:18, 14] = 0.4  # ... and its anti-aliased edges
    renderer = Renderer()
    optimiser = torch.optim.Adam(renderer.parameters(), lr=1e-2)
    first = float(renderer.loss(x).detach())
    for _ in range(200):
        loss = renderer.loss(x)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        drawn = torch.sigmoid(renderer((x > 0.5).float()))
    assert float(loss.detach()) < first
    assert drawn[0, 0, 12, 12] == pytest.approx(0.4, abs=0.1) and drawn[0, 0, 12, 13] > 0.9


def test_fitted_prior_finds_two_clusters_and_samples_them():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal(-3, 0.5, (600, 4)), rng.normal(3, 0.5, (400, 4))])
    prior = CodePrior(4)
    assert prior.fit(codes) == 2  # BIC prefers two components to one or four
    z = prior.transform(torch.randn(5000, 4), prior.components(5000, torch.Generator().manual_seed(0)))
    share_high = float((z[:, 0] > 0).float().mean())
    assert share_high == pytest.approx(0.4, abs=0.03)
    assert float(z[z[:, 0] > 0].std(dim=0).mean()) == pytest.approx(0.5, abs=0.05)
    # Its density is the mixture's: high on the clusters, low between them.
    on, between = prior.log_prob(torch.tensor([[3.0] * 4, [0.0] * 4]))
    assert on > between + 20


def test_unfitted_prior_is_the_standard_normal():
    prior, z = CodePrior(3), torch.randn(10, 3)
    expected = torch.distributions.Normal(0, 1).log_prob(z).sum(dim=1)
    assert torch.allclose(prior.log_prob(z), expected, atol=1e-5)


def test_a_dream_keeps_each_drawing_in_one_component_of_the_prior():
    model = build_model(make_model_config("default", latent_dim=2))
    model.prior._load(np.array([0.5, 0.5]), np.array([[-10.0, 0.0], [10.0, 0.0]]), np.stack([np.eye(2)] * 2))
    eps = torch.randn(30, 6, 2)  # (frames, drawings, D)
    z = model.codes_from_normal(eps, torch.Generator().manual_seed(0))
    side = torch.sign(z[..., 0])  # which cluster each frame of each drawing is in
    assert (side == side[0]).all() and len(side[0].unique()) == 2


def test_default_preset_draws_reproducibly_and_keeps_a_dream_coherent():
    model = build_model(make_model_config("default"))
    a, b = generate.draw(model, 6, seed=3), generate.draw(model, 6, seed=3)
    assert a.shape == (6, 28, 28) and np.array_equal(a, b)
    assert not np.array_equal(a, generate.draw(model, 6, seed=4))
    # The same code with the same noise is the same drawing wherever it sits in a batch.
    z = generate.prior_codes(model, 1, seed=0)
    row = generate.decode_codes(model, np.repeat(z, 3, axis=0), noise=pixel_noise(1))
    assert np.array_equal(row[0], row[2])


def test_fit_prior_leaves_the_training_random_stream_alone():
    model = build_model(make_model_config("default"))
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fit_prior(model, images, seed=1)
    assert torch.equal(torch.rand(3), expected)
    assert model.prior.weights.sum() == pytest.approx(1.0)


def test_evaluation_uses_the_prior_the_model_draws_from():
    torch.manual_seed(0)
    model = build_model(make_model_config("default", latent_dim=2))
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    before = evaluate_model(model, images, k=20)["iwae_nll"]
    model.prior._load(np.array([1.0]), np.array([[5.0, 5.0]]), np.eye(2)[None] * 0.1)  # far from the codes
    assert evaluate_model(model, images, k=20)["iwae_nll"] > before + 50


def test_random_flip_mirrors_about_half_the_drawings():
    torch.manual_seed(0)
    x = torch.rand(400, 1, 28, 28)
    flipped = random_flip(x)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(dim=1)
    assert (mirrored | (flipped == x).flatten(1).all(dim=1)).all()
    assert 0.4 < float(mirrored.float().mean()) < 0.6


def test_runs_saved_before_the_pixel_head_keep_their_model_and_training():
    from electric_sheep.core.model import ModelConfig
    from electric_sheep.core.train_config import TrainConfig

    old = ModelConfig.from_dict({"preset": "default", "latent_dim": 2, "channels": [8, 24], "hidden": 128})
    model = build_model(old)
    assert model.pixel_head is None and model.renderer is None and model.prior is None
    saved = TrainConfig(epochs=20, free_bits=0.0)  # a config.json without "flip" or "context_noise"
    assert saved.flip is False and saved.context_noise == 0.0
    saved = ModelConfig.from_dict({"preset": "default", "pixel_head": 16, "pixel_temperature": 0.7})
    assert not saved.calibrated_temperature and build_model(saved).pixel_temperature == 0.7  # as it drew
    assert saved.pixel_context == 5 and build_model(saved).pixel_head.context.kernel_size == (5, 5)
    new = make_model_config("default")
    assert (new.latent_dim, new.pixel_head, new.pixel_context, new.fitted_prior) == (16, 16, 9, True)
    with pytest.raises(ConfigError, match="seed preset"):
        make_model_config("seed", pixel_head=4)
