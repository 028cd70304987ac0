"""Descriptors, neighbourhood scores and the default anomaly score, on made-up data."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.ndimage import gaussian_filter
from skimage.feature import hog as skimage_hog
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors
from test_train import blobs

from electric_sheep.analysis import anomaly
from electric_sheep.analysis.descriptors import blurred, hog
from electric_sheep.analysis.neighbours import neighbourhood_scores, reference_ids
from electric_sheep.cli import main


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float32)


def test_descriptors_are_scikit_images_and_scipys_for_a_whole_batch(shared):
    from electric_sheep.data.drawings import load_drawings

    drawings = np.concatenate([blobs(20), np.asarray(load_drawings(shared / "quickdraw/bitmap/sheep.npy").images[:80])])
    expected = np.stack([skimage_hog(d / 255.0, 9, (4, 4), (2, 2)) for d in drawings])
    np.testing.assert_allclose(hog(drawings), expected, atol=1e-6)
    assert hog(drawings[:0]).shape == (0, expected.shape[1])
    expected = gaussian_filter(drawings / np.float32(255), (0, 1.5, 1.5)).reshape(100, 784)
    np.testing.assert_allclose(blurred(drawings), expected, atol=1e-6)


def test_local_outlier_factor_is_scikit_learns():
    points = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
    ours = neighbourhood_scores(points, flat, 20, "lof", dims=None)
    theirs = -LocalOutlierFactor(n_neighbors=20).fit(points).negative_outlier_factor_
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    knn = neighbourhood_scores(points, flat, 7, "knn", dims=None)
    dist, _ = NearestNeighbors(n_neighbors=8).fit(points).kneighbors(points)
    np.testing.assert_allclose(knn, dist[:, 1:].mean(axis=1), rtol=1e-4)  # a point is not its own neighbour


def test_a_search_in_faiss_large_blocks_finds_scikit_learns_neighbours():
    """Large enough for faiss's matrix-product path and its reservoir of k >= 100 nearest, in the
    blocks this module sets (the whole reference at once); faiss's own settings are put back."""
    import faiss

    points = np.random.default_rng(3).normal(size=(2500, 64)).astype(np.float32)
    before = faiss.cvar.distance_compute_blas_database_bs, faiss.cvar.distance_compute_blas_query_bs
    ours = neighbourhood_scores(points, flat, 100, "lof", dims=None)
    theirs = -LocalOutlierFactor(n_neighbors=100).fit(points).negative_outlier_factor_
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert (faiss.cvar.distance_compute_blas_database_bs, faiss.cvar.distance_compute_blas_query_bs) == before


def test_copies_of_a_drawing_count_once_among_its_neighbours():
    """A drawing repeated more than k times: its copies and the drawings near them score as if it
    were there once, where a density of 1 / 0 would put the drawings next to it at 1e10."""
    rng = np.random.default_rng(6)
    distinct = np.concatenate([rng.normal(size=(300, 3)), [[6.0, 6.0, 6.0]]]).astype(np.float32)
    copies = np.concatenate([distinct, np.repeat(distinct[:1], 200, axis=0)])  # the first drawing 201 times
    originals = np.arange(len(copies)) < len(distinct)
    for method, k in (("lof", 20), ("knn", 7)):
        once = neighbourhood_scores(distinct, flat, k, method, dims=None)
        repeated = neighbourhood_scores(copies, flat, k, method, dims=None)
        np.testing.assert_allclose(repeated[: len(distinct)], once, rtol=1e-5)
        np.testing.assert_allclose(repeated[len(distinct) :], once[0], rtol=1e-5)
        for size in (len(copies), len(distinct)):  # the copies outside the reference: searched whole, streamed
            outside = neighbourhood_scores(copies, flat, k, method, dims=None, eligible=originals, reference_size=size)
            np.testing.assert_allclose(outside, repeated, rtol=1e-5)
    assert np.argmax(repeated) == 300  # the far drawing, not a neighbour of the copies
    same = np.zeros((50, 3), np.float32)  # nothing to compare with
    assert not neighbourhood_scores(same, flat, 20, "lof", dims=None).any()


def test_drawings_planted_among_their_own_copies_are_not_found(run, shared):
    """A control a user may run (`--mix DATA:0.1` on DATA itself): each planted drawing has a twin
    among the others, so no score can tell them apart (AUROC 0.5). Copies counted twice, in the
    neighbourhoods or in the principal axes they are projected on, set the twins apart."""
    from electric_sheep.runs.checkpoint import load_model
    from electric_sheep.runs.mixtures import mix

    sheep = np.load(shared / "quickdraw/bitmap/sheep.npy")[:600].reshape(-1, 28, 28)
    m = mix(sheep, sheep, 0.1, seed=0)
    model = load_model(run)
    for kind in ("hog", "pixels"):
        assert anomaly.detection_metrics(anomaly.scores(model, m.images, kind), m.planted)["auroc"] < 0.6


def test_scores_do_not_depend_on_the_order_of_the_drawings_nor_change_with_one_more():
    """The reference of a large set and the sample the principal axes are fitted on are chosen by
    content, so that a file sorted otherwise gives the same scores and a drawing more or less
    barely moves the others' (samples drawn by position changed with both, and the flags with them)."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(7)
    points = (rng.normal(size=(5000, 40)) * np.linspace(3, 1, 40)).astype(np.float32)
    order = rng.permutation(len(points))
    for size in (None, 3000):  # every drawing the reference, or a sample of them (streamed)
        once = neighbourhood_scores(points, flat, 20, "lof", dims=8, reference_size=size)
        shuffled = np.empty_like(once)
        shuffled[order] = neighbourhood_scores(points[order], flat, 20, "lof", dims=8, reference_size=size)
        np.testing.assert_allclose(shuffled, once, rtol=1e-4)
        fewer = neighbourhood_scores(points[1:], flat, 20, "lof", dims=8, reference_size=size)
        assert spearmanr(fewer, once[1:])[0] > 0.999


def test_robust_z_scores_hold_when_most_drawings_score_alike():
    """Over half the scores equal (a drawing repeated, blank pages): the median absolute deviation
    is 0 and the mean absolute deviation sets the scale; all equal, every z is 0."""
    values = np.r_[np.zeros(200), np.linspace(1, 3, 99), 30.0]
    z = anomaly.robust_z(values)
    assert np.isfinite(z).all() and np.argmax(z) == 299 and z[:200].max() == 0
    assert z[-1] == pytest.approx(30 / (anomaly.MEAN_AD_TO_SD * np.abs(values).mean()))
    assert not anomaly.robust_z(np.full(10, 4.0)).any()


def test_a_tie_at_the_top_is_flagged_whole_and_top_k_flags_k():
    tied = np.r_[np.linspace(0, 1, 100), np.full(5, 767.0)]  # five copies of one scribble
    cut, _ = anomaly.threshold_for(tied)
    assert (tied > cut).sum() == 5
    assert (np.full(50, 2.0) > anomaly.threshold_for(np.full(50, 2.0))[0]).sum() == 0  # none stands out
    large = np.linspace(1e5, 2e5, 1000)  # a step of 1e-12 would be lost at this size
    assert (large > anomaly.threshold_for(large, top=3)[0]).sum() == 3


def test_copies_of_one_drawing_flag_nothing_though_their_scores_differ_in_the_last_place():
    """The model can score the same drawing a unit in the last place apart at some places of a
    batch (on an AVX-512 CPU, five blank pages: four at one value, the fifth at the next float,
    which made the default flag four of them). Rounding is no evidence: none is flagged."""
    from electric_sheep.runs.checkpoint import builtin_run_dir, load_model

    model, blanks = load_model(builtin_run_dir()), np.zeros((5, 28, 28), np.uint8)
    for kind in ("combined", "elbo-ink"):
        values = anomaly.scores(model, blanks, kind)
        assert (values > anomaly.threshold_for(values)[0]).sum() == 0, kind
    near = np.r_[np.linspace(0, 1, 100), np.full(4, 767.0), np.nextafter(767.0, 0)]  # five copies, one rounded
    assert (near > anomaly.threshold_for(near)[0]).sum() == 5
    assert not anomaly.robust_z(np.r_[np.full(4, 66.46316528), 66.46315002]).any()


def test_the_posts_error_of_a_drawing_is_its_own_wherever_it_is_in_the_file():
    """mse decodes each drawing by sampling its pixels; the randomness is the drawing's own (seeded
    by its content), so copies score alike and another order of the file changes no score."""
    from electric_sheep.runs.checkpoint import builtin_run_dir, load_model

    model = load_model(builtin_run_dir())
    drawings = np.random.default_rng(4).integers(0, 2, size=(40, 28, 28), dtype=np.uint8) * 255
    drawings[30:] = drawings[3]
    values = anomaly.scores(model, drawings, "mse")
    assert np.ptp(values[[3, *range(30, 40)]]) == 0 and np.ptp(values) > 0
    order = np.random.default_rng(5).permutation(len(drawings))
    np.testing.assert_array_equal(anomaly.scores(model, drawings[order], "mse"), values[order])


def test_principal_axes_are_the_leading_components_even_of_duplicate_drawings():
    import torch
    from sklearn.decomposition import PCA

    from electric_sheep.analysis.neighbours import _principal_axes

    rng = np.random.default_rng(3)
    scale = np.r_[np.linspace(10, 5, 8), np.full(72, 0.5)]  # 8 strong directions among 80
    points = (rng.normal(size=(400, 80)) * scale).astype(np.float32)
    centred = torch.from_numpy(points - points.mean(axis=0))
    ours = _principal_axes(centred, 8, seed=0).numpy()
    theirs = PCA(8, svd_solver="full").fit(points).components_.T
    np.testing.assert_allclose(np.abs(np.sum(ours * theirs, axis=0)), 1, atol=1e-4)  # the same up to sign
    for same in (torch.cat([centred[:6]] * 50), torch.zeros(300, 80)):  # fewer drawings than directions
        axes = _principal_axes(same - same.mean(dim=0), 8, seed=0)
        np.testing.assert_allclose(axes.T @ axes, np.eye(8), atol=1e-4)


def test_a_sampled_reference_scores_every_drawing_against_the_sample():
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(size=(900, 3)), rng.normal(8, 1, size=(3, 3))]).astype(np.float32)
    ref = reference_ids(points, np.arange(len(points)), size=300, seed=0)
    assert len(ref) == 300 and len(np.unique(ref)) == 300 and (np.diff(ref) > 0).all()
    order = np.random.default_rng(2).permutation(len(points))  # chosen by content, not by place
    assert np.array_equal(np.sort(order[reference_ids(points[order], np.arange(len(points)), 300)]), ref)
    drawings = rng.integers(0, 256, size=(10_000, 28, 28), dtype=np.uint8)  # read in batches
    drawings[5000:5400] = drawings[7]  # 400 copies: one of them at most
    chosen = reference_ids(drawings, np.arange(len(drawings)), size=3000)
    assert len(chosen) == 3000 and len(np.unique(drawings[chosen].reshape(3000, -1), axis=0)) == 3000
    order = rng.permutation(len(drawings))
    again = order[reference_ids(drawings[order], np.arange(len(drawings)), size=3000)]
    assert np.array_equal(np.unique(drawings[np.sort(again)], axis=0), np.unique(drawings[chosen], axis=0))
    got = neighbourhood_scores(points, flat, 10, "knn", dims=None, reference_size=300)
    outside = np.setdiff1d(np.arange(len(points)), ref)
    dist, _ = NearestNeighbors(n_neighbors=10).fit(points[ref]).kneighbors(points[outside])
    np.testing.assert_allclose(got[outside], dist.mean(axis=1), rtol=1e-4)
    assert set(np.argsort(-got)[:3]) == {900, 901, 902}  # the far three, whether sampled or not


def test_drawings_left_out_of_the_reference_stand_out_even_as_a_group():
    rng = np.random.default_rng(2)
    group = rng.normal(6, 0.1, size=(50, 2))  # a tight group of 50: among themselves they look dense
    points = np.concatenate([rng.normal(size=(500, 2)), group]).astype(np.float32)
    eligible = np.arange(len(points)) < 500
    alone = neighbourhood_scores(points, flat, 20, "lof", dims=None)
    against_typical = neighbourhood_scores(points, flat, 20, "lof", dims=None, eligible=eligible)
    assert np.median(alone[500:]) < 2 < np.median(against_typical[500:])
    assert (np.argsort(-against_typical)[:50] >= 500).all()


def test_the_typical_set_leaves_out_groups_explained_too_badly_and_too_well():
    """The reference of the outlier factors: intruders the code explains unusually well per unit of
    ink (more ink in easy strokes) are left out as well as those it explains badly."""
    rng = np.random.default_rng(4)
    code_ink = np.concatenate([rng.normal(1.0, 0.1, 900), np.full(50, 0.2), np.full(50, 3.0)])
    typical = anomaly.typical_set(code_ink)
    assert not typical[900:].any()
    assert typical.mean() == pytest.approx(anomaly.TYPICAL, abs=0.01)
    assert anomaly.typical_set(np.zeros(0)).shape == (0,)


def test_a_drawing_far_out_on_either_likelihood_is_not_typical():
    """Kanji among sheep: a tenth of the drawings, ordinary per unit of ink, but far more costly in
    all (many more strokes); a typical set by code-ink alone keeps most of them, by both none."""
    rng = np.random.default_rng(5)
    code_ink = rng.normal(1.0, 0.1, 1000)
    elbo = np.concatenate([rng.normal(100, 10, 900), rng.normal(200, 10, 100)])
    assert anomaly.typical_set(code_ink)[900:].mean() > 0.5
    typical = anomaly.typical_set(code_ink, elbo)
    assert not typical[900:].any()
    assert typical.mean() == pytest.approx(anomaly.TYPICAL, abs=0.01)


def test_a_set_searched_whole_scores_as_the_same_set_streamed():
    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(size=(590, 4)), rng.normal(5, 1, size=(10, 4))]).astype(np.float32)
    eligible = np.arange(len(points)) < 500  # the reference: these 500 in both cases
    whole = neighbourhood_scores(points, flat, 15, "lof", dims=None, eligible=eligible, reference_size=600)
    streamed = neighbourhood_scores(points, flat, 15, "lof", dims=None, eligible=eligible, reference_size=550)
    np.testing.assert_allclose(whole, streamed, rtol=1e-5)
    assert set(np.argsort(-whole)[:10]) == set(range(590, 600))


def test_default_score_ranks_intruders_with_more_ink_and_with_less_first(run):
    """A scribble that inks half the canvas and a lone short stroke, among rectangles: both are
    ranked first, whichever way they differ from the drawings around them."""
    from electric_sheep.runs.checkpoint import load_model

    model = load_model(run)
    rects = blobs(300, seed=11)
    scribble = np.zeros((28, 28), np.uint8)
    scribble[4:24, 4:24] = np.random.default_rng(0).choice([0, 255], size=(20, 20))
    stroke = np.zeros((28, 28), np.uint8)
    stroke[14, 10:15] = 255
    images = np.concatenate([rects, scribble[None], stroke[None]])
    ink = images.reshape(len(images), -1).sum(axis=1)
    assert ink[-2] > ink[:-2].max() and ink[-1] < ink[:-2].min()
    values = anomaly.scores(model, images)
    assert set(np.argsort(-values)[:2]) == {300, 301}
    assert values.shape == (302,) and abs(np.median(values)) < 0.5  # z-scores: the typical drawing is near 0


def test_cli_offers_every_registered_score_and_defaults_to_the_library_default():
    res = CliRunner().invoke(main, ["anomalies", "--help"])
    assert res.exit_code == 0
    for name in anomaly.SCORES:
        assert name in res.output
    assert f"[default: {anomaly.DEFAULT_SCORE}]" in res.output


@pytest.mark.parametrize("bad", [np.zeros((3, 784), np.uint8), np.zeros((3, 28, 28), np.float32)])
def test_every_score_refuses_what_is_not_drawings(run, bad):
    from electric_sheep.runs.checkpoint import load_model

    with pytest.raises(ValueError, match="expected"):
        anomaly.scores(load_model(run), bad, "hog")


def test_a_file_handed_over_is_screened_whole(run, tmp_path):
    import json

    data = tmp_path / "screen.npy"
    np.save(data, blobs(50, seed=8).reshape(50, 784))
    counts = {}
    for split in ("train", "all", None):
        options = [] if split is None else ["--split", split]
        args = ["anomalies", str(run), str(data), *options, "--out-dir", str(tmp_path / str(split)), "--json"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        counts[split] = json.loads(res.output)["n"]
    assert counts == {"train": 40, "all": 50, None: 50}  # the seeded 80/10/10 split; the whole file, by default


def test_model_scores_of_a_drawing_do_not_depend_on_what_is_scored_beside_it(run):
    """Read at the posterior mean, a drawing's likelihoods are its own: the same in any set, at any
    place in a batch (a sampled code would change with both)."""
    from electric_sheep.runs.checkpoint import load_model

    model, drawings = load_model(run), blobs(60, seed=5)
    for kind in ("elbo-ink", "code-ink", "elbo"):
        alone = anomaly.scores(model, drawings[:40], kind)
        shifted = anomaly.scores(model, drawings[15:], kind)
        np.testing.assert_allclose(alone[15:], shifted[:25], rtol=1e-6)
    sampled = [anomaly.scores(model, part, "elbo", samples=1) for part in (drawings[:40], drawings[15:])]
    assert not np.allclose(sampled[0][15:], sampled[1][:25], rtol=1e-6)  # what the mean avoids


def test_scores_in_bfloat16_as_on_a_gpu_rank_the_drawings_as_float32_does(run, monkeypatch):
    """A GPU scores in bfloat16, the pixel head layer by layer (its fused CPU pass is float32 or
    CPU bfloat16 only): emulated here, the scores move by bfloat16's rounding, the ranking hardly."""
    from scipy.stats import spearmanr

    from electric_sheep.core import infer
    from electric_sheep.runs.checkpoint import load_model

    model, drawings = load_model(run), blobs(120, seed=6)
    exact = {kind: anomaly.scores(model, drawings, kind) for kind in ("combined", "elbo-ink", "mse")}
    monkeypatch.setattr(infer, "bf16_supported", lambda device: True)
    for kind, values in exact.items():
        low = anomaly.scores(model, drawings, kind)
        assert not np.array_equal(low, values), kind  # bfloat16 did run
        assert spearmanr(low, values)[0] > 0.99, kind


def test_robust_z_is_the_textbook_formula_for_any_float_input_and_leaves_it_untouched():
    """robust_z reorders a scratch copy to find its medians in place (a file of millions holds
    two arrays of them, not five): the result is still (x - median) / (1.4826 MAD), in float64,
    whether the scores are float32 memory maps or float64, and the input is not changed."""
    rng = np.random.default_rng(3)
    values = np.r_[rng.gamma(2.0, size=501), np.full(40, 1.5)].astype(np.float32)
    values.flags.writeable = False  # as a memory map opened read-only
    offset = values.astype(np.float64) - np.median(values.astype(np.float64))
    expected = offset / (anomaly.MAD_TO_SD * np.median(np.abs(offset)))
    for given in (values, values.astype(np.float64)):
        z = anomaly.robust_z(given)
        assert z.dtype == np.float64
        np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12)


def test_scores_streamed_to_a_folder_are_the_scores_computed_in_memory(run, tmp_path):
    """Columns kept in a folder are float32 memory maps; every score a user gets is float64 and
    the same (to float32's rounding of the columns) as without a folder."""
    from electric_sheep.runs.checkpoint import load_model
    from electric_sheep.runs.streaming import Store

    model, drawings = load_model(run), blobs(60, seed=6)
    for kind in ("combined", "elbo-ink", "pixels"):
        kept = anomaly.scores(model, drawings, kind, store=Store(tmp_path / kind, {"kind": kind}))
        assert kept.dtype == np.float64
        np.testing.assert_allclose(kept, anomaly.scores(model, drawings, kind), rtol=1e-5, atol=1e-5)


def test_the_gallery_shows_the_highest_scores_first_ties_in_file_order():
    from electric_sheep.render.anomaly_outputs import _highest

    values = np.r_[np.linspace(0, 1, 1000), np.full(6, 5.0), 2.0, np.full(3, 5.0)][::-1].copy()
    for m in (0, 1, 5, 9, 10, 64, 2000):
        assert np.array_equal(_highest(values, m), np.argsort(-values, kind="stable")[:m]), m
