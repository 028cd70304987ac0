"""Using a trained model: generation, manifold, reconstruction, latent space, clusters, anomalies."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import write_bitmap, write_ndjson
from PIL import Image
from sklearn.cluster import DBSCAN, KMeans
from test_train import blobs

from electric_sheep.analysis import anomaly, generate, latent
from electric_sheep.cli import main
from electric_sheep.core.infer import as_batch
from electric_sheep.core.model import ModelConfig
from electric_sheep.core.train_config import make_train_config
from electric_sheep.data.drawings import load_drawings
from electric_sheep.errors import ConfigError, SheepError
from electric_sheep.render import anomaly_outputs, cluster_outputs, drawing_outputs, explorer, latent_figures, plots
from electric_sheep.render.plots import PLANTED_RGB, grid_image
from electric_sheep.runs import mixtures, run_sources, screening
from electric_sheep.runs.checkpoint import builtin_run_dir, load_model
from electric_sheep.runs.run_sources import run_data
from electric_sheep.runs.training import train


def test_draw_is_seeded_and_uses_the_requested_distribution(run):
    model = load_model(run)
    a, b = generate.draw(model, 9, seed=1), generate.draw(model, 9, seed=1)
    assert a.shape == (9, 28, 28) and np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    z = generate.sample_codes(2, 20000, mean=1.0, std=0.5, seed=0)
    assert z.mean() == pytest.approx(1.0, abs=0.02) and z.std() == pytest.approx(0.5, abs=0.02)
    assert generate.sample_codes(2, 20000, std=0.5, temperature=2.0).std() == pytest.approx(1.0, abs=0.02)


def test_every_drawing_command_is_one_library_call(run, tmp_path):
    """What `sheep draw`, `show`, `dream`, `interpolate`, `manifold`, `reconstruct` and `explore` do,
    without the command line."""
    model = load_model(run)
    drawn = drawing_outputs.draw_picture(run, tmp_path / "new.png", 9, seed=1)
    expected = grid_image(generate.draw(model, 9, seed=1))  # the same drawings, the same grid
    assert np.array_equal(np.asarray(Image.open(drawn["image"])), np.asarray(expected))
    shown = drawing_outputs.first_drawings_picture(run.parent / "blobs.npy", tmp_path / "grid.png", 5)
    first = grid_image(np.asarray(load_drawings(run.parent / "blobs.npy").images[:5]))
    assert shown["n"] == 5 and np.array_equal(np.asarray(Image.open(shown["image"])), np.asarray(first))
    dreamt = drawing_outputs.dream_animation(run, tmp_path / "dream.gif", 3, frames=5, seed=2)
    assert Image.open(dreamt["animation"]).n_frames == 5
    test = load_drawings(run.parent / "blobs.npy").split("test")
    line = drawing_outputs.interpolation_picture(run, tmp_path / "line.png", 0, 3, steps=4)
    assert Image.open(line["image"]).width > 6 * 28  # both drawings and the four steps in one row
    with pytest.raises(SheepError, match=f"drawing {len(test)} is out of range: the test split has {len(test)}"):
        drawing_outputs.interpolation_picture(run, tmp_path / "none.png", 0, len(test))
    assert not (tmp_path / "none.png").exists()
    plane = drawing_outputs.manifold_picture(run, tmp_path / "plane.png", 5)
    assert plane["latent_dim"] == model.config.latent_dim and (tmp_path / "plane.png").stat().st_size > 0
    rebuilt = drawing_outputs.reconstruction_picture(run, tmp_path / "again.png", count=6)
    mse = ((test[:6] / 255.0 - generate.reconstruct(model, test[:6])) ** 2).mean()
    assert rebuilt["indices"] == list(range(6)) and rebuilt["mse"] == pytest.approx(mse)
    page = explorer.explorer_page(run, tmp_path / "explorer.html", grid=4)
    valid = load_drawings(run.parent / "blobs.npy").split("valid")
    assert page["points"] == min(len(valid), explorer.EXPLORER_DRAWINGS)  # the run's own drawings, as points
    assert "electric-sheep latent explorer" in (tmp_path / "explorer.html").read_text()


def test_many_drawings_show_their_progress(run, capsys):
    """`sheep draw -n 10000` took 39 s without a word: past one batch a bar counts the drawings."""
    model = load_model(run)
    generate.draw(model, generate.BATCH, candidates=1, progress=True)  # one batch: no bar
    assert "drawing" not in capsys.readouterr().err
    n = generate.BATCH + 1
    images = generate.draw(model, n, candidates=1, progress=True)
    err = capsys.readouterr().err
    assert images.shape == (n, 28, 28) and "drawing:" in err and f"/{n} " in err, err[-300:]


def test_dreams_are_smooth_loops_through_the_prior(run, tmp_path):
    """Every frame of a dream is a sample of N(0, I); steps are small and the last runs into the first."""
    z = generate.dream_codes(latent_dim=2, n=2000, frames=96, seed=0)  # (frames, n, D)
    assert z.shape == (96, 2000, 2)
    assert abs(z.mean()) < 0.02 and z.std(axis=(1, 2)) == pytest.approx(np.ones(96), abs=0.05)
    steps = np.linalg.norm(np.diff(z, axis=0, append=z[:1]), axis=2).mean(axis=1)  # includes last -> first
    far = np.linalg.norm(z[0] - z[0][::-1], axis=1).mean()  # unrelated samples: about 1.8 apart
    assert steps.max() < 0.15 * far and steps.max() / steps.min() < 1.2  # small, even steps round the loop
    model = load_model(run)
    frames = generate.dream(model, n=3, frames=5, seed=1)
    assert frames.shape == (5, 3, 28, 28) and np.array_equal(frames, generate.dream(model, n=3, frames=5, seed=1))
    out = tmp_path / "dream.gif"
    res = CliRunner().invoke(main, ["dream", str(run), "-n", "2", "--frames", "7", "-o", str(out), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["animation"] == str(out), res.output
    gif = Image.open(out)
    assert gif.n_frames == 7 and gif.info["loop"] == 0
    assert len(gif.convert("L").getcolors()) <= 16  # GIF_GREYS levels: a GIF a quarter the size
    # many dreams wrap into rows of eight, not a strip thousands of pixels wide
    res = CliRunner().invoke(main, ["dream", str(run), "-n", "12", "--frames", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    two_rows = grid_image(np.zeros((12, 28, 28), np.uint8), ncols=8, scale=4).size
    assert Image.open(out).size == two_rows and two_rows[0] < 2 * 8 * 28 * 4


def test_the_manifold_of_a_1d_latent_is_one_line():
    """Its rows would all be the same line, on an axis z[1] that does not exist."""
    from electric_sheep.render.plots import manifold_figure

    images = np.random.default_rng(0).random((25, 28, 28))
    fig = manifold_figure(images, grid=5, span=3.0, latent_dim=1)
    ax = fig.axes[0]
    assert ax.get_images()[0].get_array().shape[:2] == (28, 5 * 28) and "latent line" in ax.get_title()
    assert ax.get_xlabel() == "z[0]" and not ax.get_yticks().size
    square = manifold_figure(images, grid=5, span=3.0, latent_dim=2).axes[0]
    assert square.get_images()[0].get_array().shape[:2] == (5 * 28, 5 * 28) and square.get_ylabel() == "z[1]"


def test_plots_of_a_1d_latent_name_no_second_dimension():
    """The scatter of 1-D codes spreads them by their order, and says so; the explorer's map has
    no second axis. Both had labelled it z[1]."""
    from electric_sheep.render.explorer import explorer_payload
    from electric_sheep.render.plots import latent_scatter_figure

    codes = np.random.default_rng(0).normal(size=(30, 1))
    ax = latent_scatter_figure(codes).axes[0]
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "drawing, in order (a 1-D latent)"
    assert latent_scatter_figure(np.column_stack([codes, codes])).axes[0].get_ylabel() == "z[1]"
    from electric_sheep.core.model import build_model, make_model_config

    model = build_model(make_model_config("default", latent_dim=1)).eval()
    payload = explorer_payload(model, codes.astype(np.float32), None, grid=4)
    assert payload["axes"] == ["z[0]", "none (a 1-D latent)"]


def test_manifold_grid_shape_and_coordinates(run):
    model = load_model(run)
    grid = generate.manifold(model, grid=5, span=3.0)
    assert grid.shape == (25, 28, 28)
    corners = generate.decode_codes(model, np.array([[0.0, 0.0], [-3.0, 3.0], [3.0, -3.0]], np.float32))
    np.testing.assert_allclose(grid[12], corners[0], atol=1e-6)  # centre tile = z (0, 0)
    np.testing.assert_allclose(grid[0], corners[1], atol=1e-6)  # top left = (-range, +range)
    np.testing.assert_allclose(grid[24], corners[2], atol=1e-6)
    codes = np.random.default_rng(0).normal(size=(200, 4)) * [3, 1, 0.1, 0.1]
    centre, axes = generate.manifold_axes(4, codes)
    assert axes.shape == (2, 4) and abs(axes[0, 0]) == pytest.approx(3, rel=0.2)  # first PC = widest direction
    alike = np.ones((50, 4), np.float32)  # a set of one drawing: no principal direction to map
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (generate.manifold_axes(4, alike)[1] == np.eye(4)[:2]).all()
        assert latent.to_plane(alike)[1] == "z"


def test_annealed_latent_statistics_approach_the_prior(run):
    model = load_model(run)
    images = load_drawings(run.parent / "blobs.npy").split("train")
    codes = latent.encode(model, images)
    assert codes.shape == (640, 2) and np.isfinite(codes).all()
    # KL weight 1 pulls the aggregate posterior (the mixture of every drawing's q(z|x)) to N(0, I):
    # its mean near 0 and its variance, var(z_mean) + mean(sigma^2), near 1 (above it on 640 drawings:
    # 1.8-2.1 per dim with this run's seed, 0.56-2.55 over three seeds), while the codes themselves
    # stay spread (not collapsed onto 0).
    assert np.abs(codes.mean(axis=0)).max() < 0.5
    with torch.no_grad():
        _, log_var = model.encode(as_batch(torch.from_numpy(images)))
    total_var = codes.var(axis=0) + log_var.exp().mean(dim=0).numpy()
    assert (total_var > 0.5).all() and (total_var < 3).all(), total_var
    assert (codes.std(axis=0) > 0.2).all()


def test_a_drawing_is_reconstructed_alike_whatever_is_reconstructed_beside_it(shared):
    """Its pixels are sampled with randomness of its own (the built-in model's head is unsure of
    about a tenth of a sheep's pixels, so other randomness redraws them)."""
    model = load_model(builtin_run_dir())
    sheep = load_drawings(shared / "quickdraw" / "bitmap" / "sheep.npy").split("test")[:6]
    together = generate.reconstruct(model, sheep)
    for i in (0, 5):
        np.testing.assert_allclose(generate.reconstruct(model, sheep[[i]])[0], together[i], atol=1e-5)


def test_reconstruct_and_sharpen(run):
    model = load_model(run)
    images = load_drawings(run.parent / "blobs.npy").split("test")[:4]
    recon = generate.reconstruct(model, images)
    assert recon.shape == (4, 28, 28)
    assert ((recon - images / 255.0) ** 2).mean() < ((recon.mean() - images / 255.0) ** 2).mean()
    x = np.zeros((1, 28, 28), np.float32)
    x[0, 10, 10] = 1.0
    s = generate.sharpen(x)
    assert s.min() == 0 and s.max() == 1 and s[0, 10, 10] == 1.0  # ink stays ink, rescaled to [0, 1]
    # kernel -1/9 around, -1 in the centre: the neighbours respond with 1/9 of the centre's.
    assert s[0, 10, 11] == pytest.approx(1 / 9, abs=1e-6) and s[0, 0, 0] == 0


def test_non_finite_codes_are_dropped_and_counted(run, tmp_path, monkeypatch):
    model = load_model(run)
    real = latent.encode

    def with_infinities(m, images):
        codes = real(m, images)
        codes[[1, 4]] = np.inf
        codes[7, 0] = np.nan
        return codes

    monkeypatch.setattr(latent, "encode", with_infinities)
    result = latent_figures.latent_map(model, blobs(20), tmp_path)
    assert result["n"] == 20 and result["n_nonfinite"] == 3 and result["n_plotted"] == 17
    assert Image.open(result["plot"]).size[0] > 100


def test_kmeans_and_dbscan_match_scikit_learn(run, tmp_path):
    model = load_model(run)
    images = blobs(300, seed=5)
    km = cluster_outputs.clusters(model, images, tmp_path, "kmeans", k=3, progress=False)
    codes = np.load(km["codes"])
    np.testing.assert_array_equal(np.load(km["labels"]), KMeans(3, n_init=10, random_state=0).fit_predict(codes))
    assert sorted(km["elbow"]) == list(range(2, 11))
    assert all(a >= b for a, b in zip(list(km["elbow"].values()), list(km["elbow"].values())[1:], strict=False))
    db = cluster_outputs.clusters(model, images, tmp_path, "dbscan", trials=8, progress=False)
    np.testing.assert_array_equal(np.load(db["codes"]), codes)
    expected = DBSCAN(eps=db["eps"], min_samples=db["min_samples"]).fit_predict(codes)
    np.testing.assert_array_equal(np.load(db["labels"]), expected)
    assert db["clusters"] == len(set(expected[expected >= 0].tolist()))
    table = (tmp_path / "dbscan_search.csv").read_text().splitlines()
    assert table[0] == "eps,min_samples,clusters,noise_fraction,silhouette" and len(table) == 9
    with pytest.raises(ConfigError, match="unknown clustering method 'spectral'"):
        cluster_outputs.clusters(model, images, tmp_path, "spectral")


def test_a_cluster_scatter_of_many_dimensions_names_its_principal_components(tmp_path, monkeypatch):
    """The clusters' scatter shows the codes' first two principal components when the latent has
    more than two dimensions, as `sheep latent` does; it had labelled them z[0] and z[1]."""
    import matplotlib.pyplot as plt

    model = load_model(builtin_run_dir())
    assert model.config.latent_dim > 2
    saved = {}
    monkeypatch.setattr(cluster_outputs, "save_figure", lambda fig, path: saved.setdefault(path.name, fig) and path)
    cluster_outputs.clusters(model, blobs(60, seed=5), tmp_path, "kmeans", k=2, progress=False)
    ax = saved["kmeans_scatter.png"].axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("first principal component", "second principal component")
    for fig in saved.values():  # what save_figure does with them
        plt.close(fig)


def test_best_dbscan_trial_rule():
    t = latent.DBSCANTrial
    trials = [t(0.1, 5, 1, 0.0, float("nan")), t(0.2, 5, 3, 0.1, 0.4), t(0.3, 5, 2, 0.05, 0.6), t(0.4, 5, 4, 0.5, 0.9)]
    assert latent.best_trial(trials).eps == 0.3  # 0.4 has the best silhouette but 50% noise
    assert latent.best_trial(trials, clusters=3).eps == 0.2
    # The rule reported says which branch chose: the user asked for a count no trial found.
    best, rule = latent.choose_trial(trials, clusters=4)
    assert best.eps == 0.4 and rule.startswith("none with exactly 4 clusters")
    best, rule = latent.choose_trial(trials, clusters=7)
    assert best.eps == 0.1 and rule.startswith("no trial found exactly 7 clusters")
    rule = latent.choose_trial(trials)[1]
    assert rule == "highest silhouette among 2+ clusters with <= 25% noise"


def test_dbscan_searches_the_codes_own_scale_by_default():
    """Three groups of codes in 16 dimensions, as the default preset's latent spreads them: the fixed
    range of 2-D codes (0.02 to 1.0) found no cluster at all; the range read off the codes finds
    the three groups, and the same ones however far apart the codes are spread."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=4.0, size=(3, 16))
    codes = np.concatenate([c + rng.normal(size=(200, 16)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), 200)
    fixed = latent.dbscan_search(codes, (0.02, 1.0), (5, 50), trials=20, progress=False)
    assert max(t.clusters for t in fixed) == 0
    labels = {}
    for scale in (1.0, 10.0):
        eps_range = latent.eps_range_of(codes * scale, (5, 50))
        trials = latent.dbscan_search(codes * scale, eps_range, (5, 50), trials=20, progress=False)
        best = latent.best_trial(trials)
        labels[scale] = latent.dbscan_labels(codes * scale, best.eps, best.min_samples)
        assert best.clusters == 3 and best.noise < 0.1
        kept = labels[scale] >= 0
        assert all(len(set(labels[scale][kept & (truth == g)].tolist())) == 1 for g in range(3))
    spread = np.multiply(latent.eps_range_of(codes, (5, 50)), 10)
    assert latent.eps_range_of(codes * 10, (5, 50)) == pytest.approx(spread, rel=1e-4)
    np.testing.assert_array_equal(labels[1.0], labels[10.0])


def test_an_eps_range_of_copies_is_still_a_range():
    """Every code the same (one drawing, copied): the distances are 0, and a log-uniform search
    needs a positive range."""
    low, high = latent.eps_range_of(np.ones((30, 4), np.float32), (5, 50))
    assert 0 < low <= high
    trials = latent.dbscan_search(np.ones((30, 4), np.float32), (low, high), (5, 50), trials=3, progress=False)
    assert all(t.clusters == 1 and t.noise == 0 for t in trials)


def test_dbscan_search_keeps_min_samples_within_the_drawings():
    codes = np.random.default_rng(0).normal(size=(8, 2))
    trials = latent.dbscan_search(codes, (0.1, 1.0), (5, 50), trials=20, progress=False)
    assert {t.min_samples for t in trials} <= set(range(5, 9))


def test_dbscan_where_every_drawing_is_its_own_cluster_has_no_silhouette():
    """min_samples 1 and a tiny eps: as many clusters as drawings, where a silhouette is undefined
    (scikit-learn raises); the trial is kept with none, not a crash."""
    codes = np.random.default_rng(0).normal(size=(40, 2))
    trials = latent.dbscan_search(codes, (1e-6, 1e-5), (1, 1), trials=3, progress=False)
    assert all(t.min_samples == 1 and t.clusters == 40 and np.isnan(t.silhouette) for t in trials)
    two = np.r_[codes[:20] * 0.01, codes[20:] * 0.01 + 10]  # two tight groups: a silhouette near 1
    assert latent.dbscan_search(two, (1.0, 1.0), (2, 2), trials=1, progress=False)[0].silhouette > 0.9


def test_dbscan_of_many_codes_clusters_a_sample_and_labels_the_rest(monkeypatch):
    """Past DBSCAN_MAX codes (whose neighbourhoods took all 24 GB of memory at 480,000), DBSCAN sees
    a seeded sample; every other code joins its nearest core code's cluster within eps, else noise."""
    from sklearn.cluster import DBSCAN

    monkeypatch.setattr(latent, "DBSCAN_MAX", 60)
    rng = np.random.default_rng(0)
    groups = np.r_[rng.normal(0, 0.05, (100, 2)), rng.normal(5, 0.05, (100, 2)), [[50.0, 50.0]]]
    labels = latent.dbscan_labels(groups, eps=0.5, min_samples=3, seed=0)
    sample = latent.dbscan_sample(len(groups), seed=0)
    assert len(sample) == 60 and np.array_equal(
        labels[sample], DBSCAN(eps=0.5, min_samples=3).fit_predict(groups[sample])
    )
    assert len(set(labels[:100])) == 1 and len(set(labels[100:200])) == 1 and labels[0] != labels[100] >= 0
    assert labels[200] == -1  # nowhere near a core code: noise
    trials = latent.dbscan_search(groups, (0.5, 0.5), (3, 3), trials=1, progress=False)
    assert trials[0].clusters == 2  # the search sees the same sample


def test_kmeans_of_many_codes_fits_a_sample_and_gives_every_code_its_nearest_centroid(monkeypatch):
    """Past KMEANS_MAX codes (ten restarts for each k of the elbow over 5,000,000 codes took minutes
    and gigabytes), k-means fits on a seeded sample and every code joins its nearest centroid."""
    monkeypatch.setattr(latent, "KMEANS_MAX", 90)
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    codes = np.concatenate([c + rng.normal(0, 0.5, (100, 2)) for c in centres]).astype(np.float32)
    sample = latent.kmeans_sample(len(codes), seed=0)
    assert len(sample) == 90 and np.array_equal(sample, np.unique(sample))
    fit = KMeans(3, n_init=10, random_state=0).fit(codes[sample])
    labels = latent.kmeans(codes, 3, seed=0)
    nearest = np.argmin(((codes[:, None] - fit.cluster_centers_[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(labels, nearest)
    assert all(len(set(labels[g * 100 : (g + 1) * 100].tolist())) == 1 for g in range(3))
    assert len(set(labels.tolist())) == 3
    assert latent.elbow(codes, [3], seed=0) == [pytest.approx(fit.inertia_ / 90, rel=1e-5)]


def test_clusters_of_many_drawings_draw_a_sample_and_count_them_all(tmp_path, monkeypatch):
    """`sheep clusters` over more codes than a scatter can show draws a seeded sample of them (its
    plane fitted on those), says so in the title, and its legend counts every drawing of each cluster."""
    import matplotlib.pyplot as plt

    monkeypatch.setattr(latent_figures, "PLOT_MAX", 50)
    monkeypatch.setattr(latent, "KMEANS_MAX", 120)
    saved = {}
    monkeypatch.setattr(cluster_outputs, "save_figure", lambda fig, path: saved.setdefault(path.name, fig) and path)
    model = load_model(builtin_run_dir())
    result = cluster_outputs.clusters(model, blobs(300, seed=5), tmp_path, "kmeans", k=3, progress=False)
    labels = np.load(result["labels"])
    assert len(labels) == 300 and result["fitted_on"] == 120
    assert result["cluster_sizes"] == {c: int((labels == c).sum()) for c in range(3)}
    ax = saved["kmeans_scatter.png"].axes[0]
    assert ax.get_title() == "k-means, k = 3 (50 of 300 drawings shown)"
    assert sum(len(c.get_offsets()) for c in ax.collections) == 50
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [f"cluster {c} ({n:,})" for c, n in result["cluster_sizes"].items()]
    assert saved["kmeans_gallery.png"]._suptitle.get_text() == "k-means, k = 3"
    for fig in saved.values():
        plt.close(fig)


def test_a_gallery_of_many_clusters_shows_the_largest():
    labels = np.r_[np.repeat(np.arange(100), 2), np.full(5, 7), np.full(3, -1)]  # cluster 7 largest, then noise
    images = np.zeros((len(labels), 28, 28), np.uint8)
    fig = latent_figures.cluster_gallery(images, labels, title="t")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert len(titles) == latent_figures.GALLERY_CLUSTERS + 1 and titles[-1] == "noise: 3 drawings"
    assert "cluster 7: 7 drawings" in titles and fig._suptitle.get_text() == "t (the 30 largest of 100 clusters)"
    sizes = {c: 2 for c in range(100)} | {7: 7, -1: 3}
    from electric_sheep.cli.latent import _cluster_sizes

    text = _cluster_sizes(sizes)
    assert text.startswith("0: 2, 1: 2") and "7: 7" in text and "noise: 3" in text
    assert text.endswith("(the 20 largest of 100 clusters)") and text.count(": ") == 21


def test_mix_plants_known_labels_and_caps_with_a_warning():
    sheep, other = blobs(100), np.full((5, 28, 28), 255, np.uint8)
    with pytest.warns(UserWarning, match="holds only 5"):
        m = mixtures.mix(sheep, other, 0.2, seed=0)
    assert len(m.images) == 105 and m.planted.sum() == 5
    assert (m.images[m.planted] == 255).all() and not (m.images[~m.planted] == 255).all(axis=(1, 2)).any()
    metrics = anomaly.detection_metrics(m.planted.astype(float) + 0.0, m.planted)
    assert metrics["auroc"] == 1.0 and metrics["precision_at_k"] == 1.0 and metrics["k"] == 5


def test_planted_drawings_rank_above_sheep(run, tmp_path):
    model = load_model(run)
    rects = blobs(200, seed=9)
    noise = np.random.default_rng(0).integers(0, 256, (10, 28, 28)).astype(np.uint8)  # scribbles all over
    m = mixtures.mix(rects, noise, 0.05, seed=1)
    # not "features": ten noise images neighbour each other in feature space (its documented limit)
    for kind in ("combined", "mse", "elbo", "elbo-ink", "code-ink"):
        result = anomaly_outputs.run_anomalies(model, m.images, tmp_path, kind=kind, planted=m.planted, top=10)
        assert result["auroc"] > 0.99 and result["precision_at_k"] >= 0.9, (kind, result)
    rows = (tmp_path / "anomaly_scores.csv").read_text().splitlines()
    assert rows[0] == "index,score,flagged,planted" and len(rows) == 211


def test_screening_a_file_is_one_library_call(run, tmp_path, monkeypatch):
    """What `sheep anomalies` does, without the command line: a file scored whole, or with drawings planted."""
    sheep, noise = tmp_path / "rects.npy", tmp_path / "noise.npy"
    np.save(sheep, blobs(200, seed=9).reshape(200, -1))
    np.save(noise, np.random.default_rng(0).integers(0, 256, (10, 784)).astype(np.uint8))
    drawings = load_drawings(sheep)
    result = screening.screen_run(run, drawings, "all", tmp_path / "file", top=5, progress=False)
    assert result["n"] == 200 and result["n_flagged"] == 5 and "n_planted" not in result
    assert not (tmp_path / "file" / screening.PARTS).exists()  # every score is in the CSV
    planting = screening.Planting(str(noise), 0.05, seed=1)
    mixed = screening.screen_run(run, drawings, "all", tmp_path / "mix", planting=planting, top=10, progress=False)
    assert mixed["n"] == 210 and mixed["n_planted"] == 10 and mixed["auroc"] > 0.99, mixed
    monkeypatch.setenv("WORLD_SIZE", "2")  # under torchrun every process would write the mixture's outputs
    with pytest.raises(ConfigError, match="one process"):
        screening.screen_run(run, drawings, "all", tmp_path / "ranks", planting=planting, progress=False)
    assert not (tmp_path / "ranks").exists()


def _ring() -> np.ndarray:
    """A circle's outline, (28, 28) uint8: a drawing no rectangle of the run resembles."""
    yy, xx = np.mgrid[:28, :28]
    return np.where(np.abs(np.hypot(yy - 13.5, xx - 13.5) - 9) < 0.8, 255, 0).astype(np.uint8)


def test_a_handful_of_drawings_is_judged_against_the_drawings_the_model_learned_from(run, tmp_path, monkeypatch):
    """A few drawings of one's own: among themselves the median one scores 0 and the 0.99 quantile
    flags one of any handful; among the run's training drawings the odd one out ranks first, and
    the threshold is the training drawings' own."""
    learned = run_data(run).split("train")  # the run's 640 training rectangles
    handful = tmp_path / "mine.npy"
    np.save(handful, np.concatenate([blobs(5, seed=11), _ring()[None], learned[:1]]).reshape(7, 784))
    result = screening.screen_run(run, load_drawings(handful), "all", tmp_path / "out", progress=False)
    assert result["compared_with"] == 639  # the one the set holds is not counted twice
    assert "of 639 drawings the model learned from" in result["rule"] and result["worst"][0] == 5, result
    assert result["n_flagged"] <= 1  # no rectangle stands out among rectangles
    import matplotlib.pyplot as plt

    learned_scores, two = np.arange(100.0), np.r_[0.0, 3.0]
    figure = anomaly_outputs.scores_figure(two, 2.5, "r", "combined", among=learned_scores, names=["a", "b"])
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "middle 90% of the 100 drawings the model learned from" in legend  # what the handful is judged against
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["a", "b"]  # pictures by their names
    plt.close(figure)
    alone = anomaly_outputs.run_anomalies(load_model(run), load_drawings(handful).images, tmp_path / "alone")
    assert alone["n_flagged"] == 1 and "learned from" not in alone["rule"]  # one of any handful
    own = screening.screen_run(run, None, "test", tmp_path / "own", progress=False)  # None: the run's data
    test_rows = {x.tobytes() for x in run_data(run).split("test")}
    not_in_test = sum(x.tobytes() not in test_rows for x in learned)  # rectangles can repeat
    assert own["n"] == 80 and own["compared_with"] == not_in_test > 600  # its test split among its train split
    small = tmp_path / "small.npy"
    np.save(small, blobs(300, seed=12).reshape(300, 784))
    # as if the run had learned from this small file: scored whole, the file is its own yardstick
    monkeypatch.setattr(run_sources, "learned_drawings", lambda run_dir: load_drawings(small))
    whole = screening.screen_run(run, load_drawings(small), "all", tmp_path / "whole", progress=False)
    assert whole["n"] == 300 and "compared_with" not in whole


def test_a_handful_is_compared_with_the_models_drawings_when_the_training_data_is_gone(run, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["source"] = str(tmp_path / "gone.npy")
    (moved / "config.json").write_text(json.dumps(config))
    handful = tmp_path / "mine.npy"
    np.save(handful, np.concatenate([blobs(5, seed=11), _ring()[None]]).reshape(6, 784))
    res = CliRunner().invoke(main, ["anomalies", str(moved), str(handful), "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "were not found: compared with 2,000 it drew" in res.output, res.output
    assert "scored among 2,000 drawings the model drew" in res.output
    scores = np.loadtxt(tmp_path / "out" / "anomaly_scores.csv", delimiter=",", skiprows=1)[:, 1]
    assert scores.argmax() == 5  # the ring, among rectangles the model drew
    CliRunner().invoke(main, ["anomalies", str(moved), str(handful), "--out-dir", str(tmp_path / "again")])
    again = (tmp_path / "again" / "anomaly_scores.csv").read_text()
    assert again == (tmp_path / "out" / "anomaly_scores.csv").read_text()  # the model's drawings are seeded
    res = CliRunner().invoke(main, ["anomalies", str(run), str(handful), "--out-dir", str(tmp_path / "found")])
    assert "scored among 640 drawings the model learned from" in res.output and "not found" not in res.output
    assert "highest scores: " in res.output and "% of them)" in res.output, res.output
    rows = (tmp_path / "found" / "anomaly_scores.csv").read_text().splitlines()
    assert rows[0] == "index,score,flagged,percentile" and float(rows[6].split(",")[-1]) > 90  # the ring


def test_encoding_a_file_is_one_library_call(run, tmp_path):
    """What `sheep latent` does, without the command line: the codes of a split on disk, and their map."""
    drawings = load_drawings(run.parent / "blobs.npy")
    result = latent_figures.latent_run(run, drawings, "test", tmp_path, progress=False)
    codes = np.load(result["codes"])
    expected = latent.encode(load_model(run), drawings.split("test"))
    assert result["n"] == len(expected) and np.allclose(codes, expected, atol=1e-5)
    assert (tmp_path / "latent.png").stat().st_size > 0


def test_anomaly_gallery_frames_planted_drawings_in_red():
    images = blobs(12, seed=3)
    values = np.arange(12, dtype=float)
    planted = np.zeros(12, bool)
    planted[10] = True  # the second highest score
    worst = np.argsort(-values)[:4]  # 11, 10, 9, 8
    img = np.asarray(anomaly_outputs.gallery_image(images, values, worst, "mse", planted).convert("RGB")).astype(int)
    red = (np.abs(img - np.array(PLANTED_RGB)) < 10).all(axis=2)
    cols = np.flatnonzero(red.any(axis=0))
    tile = 28 * 3 + 2 * 3  # 28 px and a 2 px gap, x3, in 8 columns
    assert cols.min() >= tile and cols.max() < 2 * tile + 3  # only the second tile is red
    bare = np.asarray(anomaly_outputs.gallery_image(images, values, worst, "mse")).astype(int)
    assert bare.shape == img.shape and not (np.abs(bare - np.array(PLANTED_RGB)) < 10).all(axis=2).any()
    with pytest.raises(ValueError, match="3 labels for 4 drawings"):
        grid_image(images[:4], labels=["a", "b", "c"])


def test_a_threshold_far_from_every_score_leaves_the_scores_readable():
    """--threshold 1e308: the plot keeps the scores' own scale and says where the threshold is
    (its line had stretched the axis to 1e308, every score on one row, with overflow warnings)."""
    values = np.linspace(-1.0, 9.0, 50)
    for threshold, side in ((1e308, "above"), (-1e300, "below")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fig = anomaly_outputs.scores_figure(values, threshold, f"score > {threshold:g}", "combined")
        lo, hi = fig.axes[0].get_ylim()
        assert -2 < lo < -1 and 9 < hi < 10, (lo, hi)
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert any(f"far {side} every score" in t for t in labels), labels
    fig = anomaly_outputs.scores_figure(values, 5.0, "score > 5", "combined")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1] == "threshold 5 (score > 5)"
    planted = np.arange(50) % 10 == 0  # drawings planted among cats are not among sheep
    fig = anomaly_outputs.scores_figure(values, 5.0, "score > 5", "combined", planted)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["not planted", "planted", "threshold 5 (score > 5)"], labels


def test_features_score_ranks_like_the_cosine_knn_of_encoder_features(run):
    """The indexed score (principal components, faiss) ranks drawings as scikit-learn's exact
    cosine kNN on the full encoder features does."""
    import torch
    from scipy.stats import spearmanr
    from sklearn.neighbors import NearestNeighbors

    model = load_model(run)
    images = blobs(700, seed=4)
    model.eval()
    with torch.inference_mode():
        feats = model.features(as_batch(torch.from_numpy(images))).numpy()
    assert feats.shape == (700, model.config.channels[1] * 7 * 7)  # the last conv's (C2, 7, 7) map, flat
    dist, _ = NearestNeighbors(n_neighbors=anomaly.NEIGHBOURS + 1, metric="cosine").fit(feats).kneighbors(feats)
    got = anomaly.scores(model, images, "features")
    assert spearmanr(got, dist[:, 1:].mean(axis=1)).statistic > 0.95


def crosses(n: int, seed: int = 0) -> np.ndarray:
    """Drawings of another kind: X shapes of random size and place, as uint8 (n, 28, 28)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        x0, y0 = rng.integers(2, 12, 2)
        size = int(rng.integers(8, 14))
        t = np.arange(size)
        out[i, y0 + t, x0 + t] = out[i, y0 + t, x0 + size - 1 - t] = 255
    return out


def test_trimmed_training_sets_aside_what_the_first_model_finds_anomalous(tmp_path):
    sheep = blobs(300, seed=5)
    m = mixtures.mix(sheep, crosses(30, seed=1), 0.1, seed=0)
    model = mixtures.train_on_mixture(
        m.images, sheep[:32], ModelConfig(), tmp_path / "mix", epochs=5, trim=0.2, progress=False, log=lambda s: None,
        batch_size=32, kl_start=0, kl_steep=2,
    )  # fmt: skip
    kept = np.load(tmp_path / "mix" / "kept.npy")
    assert kept.shape == (330,) and kept.sum() == pytest.approx(0.8 * 330, abs=1)
    first = load_model(tmp_path / "mix" / "stage1")
    np.testing.assert_array_equal(kept, anomaly.typical_drawings(first, m.images, share=0.8))  # 20% set aside
    assert kept[m.planted].mean() < 0.5 < kept[~m.planted].mean()  # mostly the crosses
    assert json.loads((tmp_path / "mix" / "config.json").read_text())["data"]["n_train"] == kept.sum()
    assert anomaly.scores(model, m.images).shape == (330,)  # the stage-2 model is the one returned
    with pytest.raises(anomaly.ConfigError, match="trim"):
        mixtures.train_on_mixture(m.images, sheep, ModelConfig(), tmp_path / "x", epochs=1, trim=1.0)
    # stage 2 again from the kept stage 1: the same drawings set aside, the same model
    cfg = make_train_config("default", epochs=5, batch_size=32, kl_start=0, kl_steep=2)
    quiet = {"progress": False, "log": lambda s: None}
    again = mixtures.train_trimmed(first, m.images, sheep[:32], ModelConfig(), cfg, tmp_path / "again", **quiet)
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "kept.npy"), kept)
    for (name, ours), theirs in zip(again.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)


class _StepCounter:
    """Counts training steps (as the progress bar sees them) and raises Ctrl-C at ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.n, self.stop_at = 0, stop_at

    def on_step(self, bar, state) -> None:
        self.n += 1
        if self.n == self.stop_at:
            raise KeyboardInterrupt


def test_an_interrupted_mixture_run_continues_where_it_stopped(tmp_path, monkeypatch):
    """`sheep anomalies --train-on-mix` stopped by Ctrl-C or SIGTERM in either stage: the same call
    again goes on from the last step saved (stage 1 is not trained again) to the model an
    uninterrupted call trains, on whichever device it is told; other settings start afresh."""
    from electric_sheep.runs import callbacks

    m = mixtures.mix(blobs(120, seed=5), crosses(12, seed=1), 0.1, seed=0)
    options = {"epochs": 2, "trim": 0.2, "progress": False, "log": lambda s: None, "batch_size": 32}
    straight = mixtures.mixture_run(m.images, m.images[:32], ModelConfig(), tmp_path / "straight", **options)
    steps_taken = []
    for stop_at in (3, 11):  # a step of stage 1 (5 an epoch, 10 in all), then of stage 2 (4 an epoch)
        out = tmp_path / f"stopped-{stop_at}"
        for counter in (_StepCounter(stop_at), _StepCounter()):
            with monkeypatch.context() as patch:
                patch.setattr(callbacks.Progress, "on_step", lambda bar, state, c=counter: c.on_step(bar, state))
                if counter.stop_at is None:  # where it runs is no other setting: it continues
                    again = mixtures.mixture_run(m.images, m.images[:32], ModelConfig(), out, **options, device="cpu")
                    continue
                with pytest.raises(KeyboardInterrupt):
                    mixtures.mixture_run(m.images, m.images[:32], ModelConfig(), out, **options)
                assert not (out / "mixture_run").exists() and (out / mixtures.PARTIAL).is_dir()
        steps_taken.append(counter.n)
        for (name, ours), theirs in zip(again.state_dict().items(), straight.state_dict().values(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0, msg=name)
        assert not (out / mixtures.PARTIAL).exists() and (out / "mixture_run" / "stage1").is_dir()
    assert steps_taken == [10 - 3 + 8, 8 - 1]  # only what the interrupted call had not done
    with pytest.raises(KeyboardInterrupt), monkeypatch.context() as patch:  # another interrupted call
        patch.setattr(callbacks.Progress, "on_step", lambda bar, state, c=_StepCounter(2): c.on_step(bar, state))
        mixtures.mixture_run(m.images, m.images[:32], ModelConfig(), out, **options)
    said = []
    other = mixtures.mixture_run(
        m.images, m.images[:32], ModelConfig(), out, **{**options, "seed": 1, "log": said.append}
    )
    assert "held an interrupted training of other drawings or settings: starting afresh" in said[0]
    assert not all(
        torch.equal(a, b) for a, b in zip(other.state_dict().values(), straight.state_dict().values(), strict=True)
    )


def test_a_mixture_without_validation_drawings_validates_on_itself(tmp_path):
    """A file of a few drawings has no valid split: the honest case trains on, as `sheep train`
    does, validating on the mixture (it stopped with a message meant for a library caller)."""
    from electric_sheep.errors import SheepWarning

    m = mixtures.mix(blobs(20, seed=5), crosses(4, seed=1), 0.2, seed=0)
    quiet = {"progress": False, "log": lambda s: None}
    with pytest.warns(SheepWarning, match="the mixture: no drawing in the validation split .24 to train on."):
        model = mixtures.train_on_mixture(m.images, m.images[:0], ModelConfig(), tmp_path, epochs=1, trim=0, **quiet)
    assert anomaly.scores(model, m.images, "elbo-ink").shape == (24,)


def test_snapshots_of_a_short_run_show_its_change(tmp_path):
    """By default the post's epochs (5, 10, 15, 20) where the run saved two or more of them; a run
    of 6 epochs has only the 5th, one panel that shows nothing change: four spread over it instead."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    for epochs, shown in ((6, [1, 3, 4, 6]), (12, [5, 10]), (3, [1, 2, 3])):
        run_dir = tmp_path / f"run{epochs}"
        (run_dir / "latents").mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps({"model": {"preset": "seed", "latent_dim": 2}}))
        for e in range(1, epochs + 1):
            np.save(run_dir / "latents" / f"epoch_{e:03d}.npy", rng.normal(size=(20, 2)).astype(np.float32))
        figure, chosen, *_ = latent_figures.snapshots_figure(run_dir)
        plt.close(figure)
        assert chosen == shown
    figure, chosen, *_ = latent_figures.snapshots_figure(tmp_path / "run6", [5])
    plt.close(figure)
    assert chosen == [5]  # asked for: as asked


def test_snapshots_animate_every_saved_epoch_on_fixed_axes(run, tmp_path, monkeypatch):
    """`snapshots --gif`: one frame per saved epoch, all the same size, titled with the KL weight;
    the codes move between the first frame and the last."""
    res = CliRunner().invoke(main, ["snapshots", str(run), "--gif", "--out-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    gif = Image.open(json.loads(res.output)["animation"])
    assert gif.format == "GIF" and gif.n_frames == 30 and gif.info["loop"] == 0  # 30 epochs, looping
    frames = []
    for i in (0, gif.n_frames - 1):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("L"), dtype=np.int16))
    assert frames[0].shape == frames[1].shape and np.abs(frames[0] - frames[1]).mean() > 1
    res = CliRunner().invoke(main, ["snapshots", str(run), "--epochs", "5,99,5", "--out-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["epochs"] == [5], res.output
    assert "no codes saved after epoch(s) 99 (saved: 1-30); showing 5" in res.stderr  # not silently left out
    images, epochs, dropped = latent_figures.snapshot_frames(run)
    assert epochs == list(range(1, 31)) and dropped == 0 and len({im.size for im in images}) == 1
    monkeypatch.setattr(latent_figures, "MAX_FRAMES", 4)  # a long run: epochs spread over it, first and last kept
    assert latent_figures.snapshot_frames(run)[1] == [1, 11, 20, 30]
    lo, hi = latent_figures._frame_limits([np.array([[0.0, 0.0], [1.0, 2.0]]), np.array([[-1.0, 0.5]])])
    assert (lo < [-0.9, -0.05]).all() and (hi > [0.9, 1.9]).all()  # holds every frame's codes
    plane = np.random.default_rng(0).normal(size=(50, 2))
    flipped = plane * [1.0, -1.0]  # PCA may flip an axis from one epoch to the next
    assert np.array_equal(latent_figures._agree_in_sign(flipped, plane), plane)


def test_names_with_dollar_signs_are_drawn_as_written(run, tmp_path):
    """matplotlib reads $...$ as TeX: a picture or a category named ``$\\foo{$`` (a file's name)
    is a title and a legend entry as written, not a failed formula."""
    import matplotlib.pyplot as plt

    name = "price $\\foo{$.png"
    Image.fromarray(255 - np.kron(blobs(1, seed=5)[0], np.ones((10, 10), np.uint8))).save(tmp_path / name)
    out = ["--out-dir", str(tmp_path)]
    res = CliRunner().invoke(main, ["reconstruct", str(run), "--data", str(tmp_path / name), *out])
    assert res.exit_code == 0, res.output
    codes, labels = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    figure = plots.latent_scatter_figure(codes, "all of $x^$", labels, {0: "$\\foo{$", 1: "dog"})
    plots.save_figure(figure, tmp_path / "scatter.png")
    assert figure.axes[0].get_title() == "all of $x^$"
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()][0].startswith("$\\foo{$")
    plt.close(figure)


def test_your_own_pictures_can_be_scored_and_reconstructed(run, tmp_path):
    """A folder of pictures as DATA: the anomaly CSV names each file (one named like a spreadsheet
    formula is written so that a spreadsheet shows it, not runs it); one picture reconstructs."""
    folder = tmp_path / "doodles"
    folder.mkdir()
    for name, drawing in zip(["doodle0.png", "doodle1.png", "=1+2.png"], blobs(3, seed=5), strict=True):
        Image.fromarray(255 - np.kron(drawing, np.ones((10, 10), np.uint8))).save(folder / name)
    res = CliRunner().invoke(main, ["anomalies", str(run), str(folder), "--out-dir", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["n"] == 3 and set(result["worst_names"]) == {"doodle0.png", "doodle1.png", "=1+2.png"}
    from PIL import ImageFont

    from electric_sheep.render.plots import LABEL_PX, _fit

    font = ImageFont.load_default(size=LABEL_PX)
    assert _fit("car0  2.24", font, 80) == "car0  2.24"
    short = _fit("a_very_long_file_name_of_my_daughters_sheep  1.88", font, 80)
    assert font.getlength(short) <= 80 and short.startswith("a_v") and short.endswith("1.88") and "…" in short
    rows = (tmp_path / "a" / "anomaly_scores.csv").read_text().splitlines()
    assert rows[0] == "index,score,flagged,name,percentile"
    assert [row.split(",")[3] for row in rows[1:]] == ["'=1+2.png", "doodle0.png", "doodle1.png"]
    one = str(folder / "doodle1.png")
    res = CliRunner().invoke(main, ["reconstruct", str(run), "--data", one, "--out-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["indices"] == [0], res.output
    import matplotlib.pyplot as plt

    assert json.loads(res.output)["names"] == ["doodle1.png"]  # the picture's title names its file
    figure = plots.reconstruction_figure({"original": blobs(1) / 255}, [0], ["doodle1.png"])
    assert figure._suptitle.get_text() == "doodle1.png and its reconstruction"
    plt.close(figure)
    res = CliRunner().invoke(main, ["train", str(folder), "--epochs", "1", "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0 and "pictures have no held-out split" in res.stderr, res.output
    (folder / "scores.csv").write_text("index,score\n")  # figures beside numbers: our output, not drawings
    res = CliRunner().invoke(main, ["latent", str(folder), "--out-dir", str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder" in res.output, res.output
    res = CliRunner().invoke(main, ["latent", str(run), str(folder), "--out-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["n"] == 3, res.output  # named as DATA: its pictures


def test_cli_commands_write_figures_and_json(run, tmp_path, monkeypatch):
    r = CliRunner()
    out = tmp_path / "sheep.png"
    res = r.invoke(main, ["draw", str(run), "-n", "16", "-o", str(out)])
    assert res.exit_code == 0 and out.is_file(), res.output
    for args in (
        ["manifold", "--grid", "6"],
        ["interpolate", "--from", "0", "--to", "3", "--steps", "5"],
        ["reconstruct", "--index", "1", "--index", "2", "--sharpen"],
        ["latent"],
        ["snapshots"],
        ["clusters", "--k", "3"],
        ["clusters", "--method", "dbscan", "--trials", "5"],
    ):
        res = r.invoke(main, [args[0], str(run), *args[1:], "--out-dir", str(tmp_path), "--json"])
        assert res.exit_code == 0, (args, res.output)
        result = json.loads(res.output)
        for key in ("image", "plot", "scatter"):
            if key in result:
                assert Image.open(result[key]).size[0] > 50
    for split, n in (([], 800), (["--split", "train"], 640)):  # what it was given, unless a split is asked for
        res = r.invoke(main, ["latent", str(run), str(run.parent / "blobs.npy"), *split, "--out-dir", str(tmp_path)])
        assert res.exit_code == 0 and f"encoded {n} drawings" in res.output, res.output
    other = tmp_path / "noise.npy"
    np.save(other, np.random.default_rng(0).integers(0, 256, (8, 784)).astype(np.uint8))
    mix = ["anomalies", str(run), str(run.parent / "blobs.npy"), "--mix", f"{other}:0.02", "--json"]
    res = r.invoke(main, [*mix, "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output.strip().splitlines()[-1])
    assert {"auroc", "average_precision", "precision_at_k", "n", "n_planted"} <= set(result)
    assert result["n_planted"] == 8 and result["n"] == 808  # every one of the 800 blobs, and the 8 planted
    honest_args = ["--train-on-mix", "2", "--latent-dim", "3", "--score", "features", "--top", "8"]
    res = r.invoke(main, [*mix, *honest_args, "--out-dir", str(tmp_path / "honest")])
    assert res.exit_code == 0, res.output
    honest = json.loads(res.output.strip().splitlines()[-1])
    assert honest["n_flagged"] == 8 and (tmp_path / "honest" / "mixture_run" / "model.safetensors").is_file()
    assert (tmp_path / "honest" / "mixture_run" / "stage1" / "model.safetensors").is_file()  # trimmed by default
    assert honest["score"] == "features" and load_model(tmp_path / "honest" / "mixture_run").config.latent_dim == 3

    def interrupted(images, val, model_cfg, run_dir, **kw):
        (run_dir / "model.safetensors").write_bytes(b"half-written")
        raise KeyboardInterrupt

    monkeypatch.setattr(mixtures, "train_on_mixture", interrupted)
    res = r.invoke(main, [*mix, "--train-on-mix", "2", "--latent-dim", "5", "--out-dir", str(tmp_path / "honest")])
    assert res.exit_code != 0  # Ctrl-C while retraining keeps the earlier mixture run whole
    assert load_model(tmp_path / "honest" / "mixture_run").config.latent_dim == 3
    partial = tmp_path / "honest" / mixtures.PARTIAL  # kept for the same command again, nothing else
    assert [p.name for p in (tmp_path / "honest").iterdir() if p.name.startswith(".mixture_run")] == [partial.name]
    monkeypatch.undo()
    res = r.invoke(main, ["reconstruct", str(run), "--index", "999"])
    assert res.exit_code == 2 and "out of range" in res.output


def test_mixing_bitmaps_with_strokes_warns_about_the_renderer(tmp_path):
    """README: mix like with like; the tool says so when a mix crosses renderers."""
    bitmaps = write_bitmap(tmp_path / "sheep.npy", n=50)
    strokes = write_ndjson(tmp_path / "squares.ndjson", n=8)
    warning = "mix like with like"
    for other, warned in [(strokes, True), (write_bitmap(tmp_path / "cats.npy", n=8, seed=1), False)]:
        res = CliRunner().invoke(main, ["anomalies", str(bitmaps), "--mix", f"{other}:0.1", "--out-dir", str(tmp_path)])
        assert res.exit_code == 0, res.output
        assert (warning in res.stderr) is warned and warning not in res.stdout
    res = CliRunner().invoke(main, ["anomalies", str(bitmaps), "--mix", f"{strokes}:0.5", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0 and "warning: asked for 25 planted drawings" in res.stderr  # 0.5 of all 50
    assert "UserWarning" not in res.stderr


def test_reconstruct_reads_index_lists_both_ways(run, tmp_path):
    """`--index 1 2 3` (the issue's usage) and the repeated form pick the same drawings."""
    r = CliRunner()

    def indices(*args: str) -> list[int]:
        res = r.invoke(main, ["reconstruct", *args, "--out-dir", str(tmp_path), "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)["indices"]

    assert indices(str(run), "--index", "1", "2", "3") == [1, 2, 3]
    assert indices("--index", "4", "0", str(run)) == [4, 0]  # RUN_DIR after the list
    assert indices(str(run), "--index", "2", "--index", "5") == [2, 5]
    res = r.invoke(main, ["reconstruct", str(run), "7"])  # an index without --index
    assert res.exit_code == 2 and "choose drawings with --index" in res.output
    res = r.invoke(main, ["reconstruct", str(run), str(tmp_path), "--index", "1"])
    assert res.exit_code == 2 and "unexpected extra argument" in res.output


def test_real_sheep_and_omniglot(shared, tmp_path):
    """A model trained for a few epochs on real Aaron sheep ranks planted Omniglot symbols first."""
    sheep = load_drawings(shared / "aaron_sheep.npz")
    omni = load_drawings(shared / "omniglot.npz")
    m = mixtures.mix(sheep.split("train", limit=3000), omni.split("test"), 0.05, seed=0)
    cfg = make_train_config("default", epochs=4, kl_start=0, kl_steep=2, val_limit=200)
    train(m.images, sheep.split("valid"), ModelConfig(), cfg, tmp_path / "run", progress=False, log=lambda s: None)
    model = load_model(tmp_path / "run")
    result = anomaly_outputs.run_anomalies(model, m.images, tmp_path, planted=m.planted)
    assert result["score"] == "combined"  # the library's default is the CLI's
    assert result["auroc"] > 0.95 and result["precision_at_k"] > 0.6, result
    plain = anomaly.detection_metrics(anomaly.scores(model, m.images, "mse"), m.planted)
    assert plain["auroc"] < result["auroc"]


def test_real_hard_case_default_score(shared, tmp_path):
    """Google-rendered cats, dogs, rabbits and ducks among the Google sheep, the honest way (trained
    trimmed on the mixture): the default score ranks them above each score it combines and above
    the features score. PyOD's detectors reach 0.78-0.84 AUROC on this mixture."""
    bitmaps = shared / "quickdraw" / "bitmap"
    sheep = load_drawings(bitmaps / "sheep.npy")
    others = np.concatenate(
        [np.asarray(load_drawings(bitmaps / f"{a}.npy").images) for a in ("cat", "dog", "rabbit", "duck")]
    )
    m = mixtures.mix(np.asarray(sheep.images), others, 0.1, seed=0)
    model = mixtures.train_on_mixture(
        m.images, sheep.split("valid"), ModelConfig(latent_dim=8), tmp_path / "mix", epochs=30,
        progress=False, log=lambda s: None,
    )  # fmt: skip
    auroc = {
        k: anomaly.detection_metrics(anomaly.scores(model, m.images, k), m.planted)["auroc"] for k in anomaly.SCORES
    }
    others = [k for k in ("elbo-ink", "hog", "pixels", "features") if auroc[k] >= auroc["combined"]]
    assert auroc["combined"] > 0.86 and not others, auroc


def test_higher_latents_without_recorded_data_still_map(tmp_path):
    """A 3-D run trained on in-memory drawings records no data file: the manifold is oriented by the
    codes saved after its last epoch, and a single drawing still gets a latent plot."""
    images = blobs(200)
    cfg = make_train_config("default", epochs=2, batch_size=32)
    train(images[:160], images[160:], ModelConfig(latent_dim=3), cfg, tmp_path / "run", progress=False, log=print)
    saved = np.load(tmp_path / "run" / "latents" / "epoch_002.npy")
    codes = latent.validation_codes(load_model(tmp_path / "run"), tmp_path / "run")
    np.testing.assert_array_equal(codes, saved)
    centre, _ = generate.manifold_axes(3, codes)
    np.testing.assert_allclose(centre, saved.mean(axis=0), atol=1e-5)  # the plane is the codes' PCA plane
    r = CliRunner()
    res = r.invoke(main, ["manifold", str(tmp_path / "run"), "--grid", "4", "--out-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    assert Image.open(json.loads(res.output)["image"]).size[0] > 4 * 28
    plane, axis = latent.to_plane(saved[:1])
    assert plane.shape == (1, 2) and axis == "z"
    one = tmp_path / "one.npy"
    np.save(one, images[:1].reshape(1, 784))
    res = r.invoke(main, ["latent", str(tmp_path / "run"), str(one), "--out-dir", str(tmp_path / "one"), "--json"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["report", str(tmp_path / "run"), str(one), "-o", str(tmp_path / "r.html"), "--json"])
    assert res.exit_code == 0, res.output
    assert "clusters" not in json.loads(res.output)["sections"]  # one drawing: no k-means to show


def test_library_refuses_floats_and_flat_drawings(run, tmp_path):
    """Floats already in [0, 1] would silently be divided by 255 again; flat rows fail deep in a conv."""
    model = load_model(run)
    with pytest.raises(ValueError, match="expected uint8 drawings"):
        latent.encode(model, blobs(3) / 255.0)
    with pytest.raises(ValueError, match=r"shape \(N, 28, 28\), got \(3, 784\)"):
        anomaly.scores(model, blobs(3).reshape(3, 784))
    with pytest.raises(ValueError, match="expected uint8 drawings"):
        train(blobs(8).astype(np.float32), blobs(2), ModelConfig(), make_train_config("default"), tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before the run folder is made


def test_the_library_draws_nothing_when_asked_for_nothing_and_refuses_negative_counts():
    model = load_model(builtin_run_dir())
    assert generate.draw(model, 0).shape == (0, 28, 28)
    with pytest.raises(ValueError, match="n must be >= 0"):
        generate.draw(model, -1)
    with pytest.raises(ValueError, match="samples must be >= 0"):
        anomaly.scores(model, np.zeros((2, 28, 28), np.uint8), "elbo-ink", samples=-1)


def test_one_drawing_is_counted_as_one(tmp_path):
    """Messages and gallery titles put the noun in the singular for one: '1 drawing', not '1 drawings'."""
    r = CliRunner()
    res = r.invoke(main, ["draw", "-n", "1", "-o", str(tmp_path / "one.png")])
    assert res.exit_code == 0 and "(1 drawing from" in res.output, res.output
    one = tmp_path / "one.npy"
    np.save(one, blobs(1).reshape(1, 784))
    res = r.invoke(main, ["latent", str(one), "--out-dir", str(tmp_path), "--quiet"])
    assert res.exit_code == 0 and "encoded 1 drawing into" in res.output, res.output
    fig = latent_figures.cluster_gallery(blobs(3), np.array([0, 0, 1]))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["cluster 0: 2 drawings", "cluster 1: 1 drawing"], titles
