"""bench.stats against independent references: statsmodels (Wilson, exact McNemar, Holm), a direct
O(n^2) DeLong, and the real scorers run on the resampled list of samples that a bootstrap
replicate's weights stand for (MaxBoxAcc/V2 with the wsolevaluation-style BoxAccuracy, VOC mAP
with bench's scorer and the classic voc_eval loop); then the coverage of the 95% intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from bench.stats import bootstrap, delong, paired, replicates
from bench.stats.multiple import holm
from bench.stats.proportion import exact_mcnemar, wilson


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (37, 250), (4120, 50000), (1, 1)])
def test_wilson_equals_statsmodels(k, n):
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert wilson(k, n) == pytest.approx((lo, hi), abs=1e-12)


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 9), (9, 3), (25, 25), (40, 61), (200, 260), (1, 30)])
def test_exact_mcnemar_equals_statsmodels(b, c):
    expected = mcnemar(np.array([[500, b], [c, 400]]), exact=True).pvalue
    assert exact_mcnemar(b, c) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_holm_equals_statsmodels():
    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 17):
        p = rng.random(m) ** 3
        p[0] = p[-1]  # ties
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), abs=1e-15)


def _delong_direct(pos_a, neg_a, pos_b, neg_b):
    """DeLong's structural components from every positive x negative pair (psi = 1, 1/2, 0)."""
    def parts(pos, neg):
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (a, v10a, v01a), (b, v10b, v01b) = parts(pos_a, neg_a), parts(pos_b, neg_b)
    m, n = len(pos_a), len(neg_a)
    s10, s01 = np.cov(np.stack([v10a, v10b])), np.cov(np.stack([v01a, v01b]))
    s = s10 / m + s01 / n
    var_diff = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    return a, b, s[0, 0], var_diff


@pytest.mark.parametrize("seed", range(4))
def test_delong_equals_the_direct_computation(seed):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(5, 40)), int(rng.integers(5, 40))
    pos_a, neg_a = np.round(rng.normal(1, 1, m), 1), np.round(rng.normal(0, 1, n), 1)  # rounded: ties
    pos_b, neg_b = np.round(pos_a + rng.normal(0, 0.7, m), 1), np.round(neg_a + rng.normal(0, 0.7, n), 1)
    a, b, var_a, var_diff = _delong_direct(pos_a, neg_a, pos_b, neg_b)
    out = delong.paired_test(pos_a, neg_a, pos_b, neg_b)
    labels = np.r_[np.ones(m), np.zeros(n)]
    assert out["auc_a"] == pytest.approx(roc_auc_score(labels, np.r_[pos_a, neg_a]), abs=1e-12) == pytest.approx(a, abs=1e-12)
    assert out["auc_b"] == pytest.approx(b, abs=1e-12)
    assert out["se"] == pytest.approx(math.sqrt(var_diff), rel=1e-9)
    z = abs(a - b) / math.sqrt(var_diff)
    assert out["p"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    auc, lo, hi = delong.auc_interval(pos_a, neg_a)
    assert (lo, hi) == pytest.approx((max(0, a - 1.959963984540054 * math.sqrt(var_a)), min(1, a + 1.959963984540054 * math.sqrt(var_a))), abs=1e-9)


def _resampled(items, w):
    """The list a replicate's weights stand for: each item as often as its weight, copies adjacent."""
    return [x for x, k in zip(items, w) for _ in range(int(k))]


def test_a_maxboxacc_replicate_equals_rescoring_the_resampled_images():
    from bench.metrics.wsol import BoxAccuracy, best_iou_per_threshold, cam_thresholds

    rng = np.random.default_rng(1)
    thresholds = cam_thresholds(0.01)
    images = []
    for _ in range(30):
        cam = np.zeros((24, 24))
        x, y = rng.integers(0, 14, 2)
        cam[y:y + 10, x:x + 10] += 1.0
        cam = np.clip(cam + rng.random((24, 24)) * 0.8, 0, None)
        cam /= cam.max()
        gx, gy = rng.integers(0, 12, 2)
        images.append((cam, np.array([[gx, gy, gx + int(rng.integers(6, 12)), gy + int(rng.integers(6, 12))]])))
    ious = (30, 50, 70)
    bests = [best_iou_per_threshold(cam, gt, thresholds, True) for cam, gt in images]
    hits = [replicates.hit_matrix([replicates.runs_of(b >= t / 100) for b in bests], len(thresholds)) for t in ious]
    weights = np.vstack([np.ones(len(images), np.int32), bootstrap.resample_weights(len(images), 5, np.random.default_rng(2))])
    ours = replicates.max_box_acc(hits, weights)
    for k, w in enumerate(weights):
        acc = BoxAccuracy(thresholds, ious, multi_contour=True)
        for cam, gt in _resampled(images, w):
            acc.add(cam, gt)
        assert ours[k] == acc.result()["maxboxacc_mean"]  # exactly
        assert replicates.max_box_acc(hits[1:2], w[None])[0] == acc.result()["maxboxacc@50"]


def test_a_voc_map_replicate_equals_rescoring_the_resampled_images():
    from bench.metrics.voc import Detections, class_flags, voc_detection_ap
    from test_metrics_voc import random_case
    from voc_reference import classic_ap

    rng = np.random.default_rng(3)
    gts, dets = random_case(rng, n_images=40, num_classes=6)
    dets.scores = rng.random(len(dets.scores))  # distinct scores: the devkit orders tied detections by input order
    n, k = len(gts), 6
    gt_counts = np.array([[int(((g.labels == c) & ~g.difficult).sum()) for c in range(k)] for g in gts])
    classes = []
    gt_image = np.concatenate([np.full(len(g.labels), i) for i, g in enumerate(gts)])
    gt_boxes, gt_labels, gt_diff = np.concatenate([g.boxes for g in gts]), np.concatenate([g.labels for g in gts]), np.concatenate([g.difficult for g in gts])
    for c in range(k):
        g, d = gt_labels == c, dets.labels == c
        order, tp, fp, _ = class_flags(gt_image[g], gt_boxes[g], gt_diff[g], dets.image[d], dets.scores[d], dets.boxes[d])
        classes.append((dets.image[d][order], tp, fp))
    weights = np.vstack([np.ones(n, np.int32), bootstrap.resample_weights(n, 6, np.random.default_rng(4))])
    ours07, ours_area = replicates.voc_map(classes, gt_counts, weights), replicates.voc_map(classes, gt_counts, weights, area=True)
    for b, w in enumerate(weights):
        picked = _resampled(range(n), w)
        sub_gt = [gts[i] for i in picked]
        rows = [j for new, i in enumerate(picked) for j in np.flatnonzero(dets.image == i)]
        new_image = np.concatenate([np.full(int((dets.image == i).sum()), new) for new, i in enumerate(picked)])
        sub = Detections(new_image, dets.labels[rows], dets.scores[rows], dets.boxes[rows])
        scored = voc_detection_ap(sub_gt, sub, k)
        assert ours07[b] == scored["map_voc07"]  # exactly
        assert ours_area[b] == pytest.approx(scored["map_area"], rel=1e-12)
        classic = classic_ap([(g.boxes, g.labels, g.difficult) for g in sub_gt], sub.image, sub.labels, sub.scores, sub.boxes, k, use_07=True)
        assert ours07[b] == pytest.approx(100 * np.nanmean(classic), rel=1e-12)


def test_weights_are_resamples():
    w = bootstrap.resample_weights(50, 200, np.random.default_rng(0))
    assert w.shape == (200, 50) and (w.sum(axis=1) == 50).all() and w.min() >= 0
    assert abs(w.mean() - 1) < 0.05 and abs(w.var() - (1 - 1 / 50)) < 0.1  # multinomial(50, 1/50) counts
    s = bootstrap.stratified_weights([10, 30], 100, np.random.default_rng(0))
    assert (s[:, :10].sum(axis=1) == 10).all() and (s[:, 10:].sum(axis=1) == 30).all()


def test_coverage_of_wilson_and_delong():
    """500 simulated data sets with a known truth: the 95% intervals cover it 95% +- 2% of the time."""
    rng = np.random.default_rng(7)
    p_true, n = 0.23, 400
    covered = sum(lo <= p_true <= hi for lo, hi in (wilson(int(rng.binomial(n, p_true)), n) for _ in range(500)))
    assert 0.93 * 500 <= covered <= 0.97 * 500
    # AUROC of N(1, 1) vs N(0, 1) scores: Phi(1 / sqrt(2))
    from scipy.stats import norm

    auc_true = norm.cdf(1 / math.sqrt(2))
    hits = 0
    for _ in range(500):
        _, lo, hi = delong.auc_interval(rng.normal(1, 1, 150), rng.normal(0, 1, 200))
        hits += lo <= auc_true <= hi
    assert 0.93 * 500 <= hits <= 0.97 * 500


def test_an_ece_replicate_equals_rescoring_the_resampled_images():
    from bench.metrics.calibration import expected_calibration_error

    rng = np.random.default_rng(5)
    confidence = np.r_[rng.random(200), [0.0, 1.0, 1 / 15, 2 / 15]]  # bin edges included
    correct = rng.random(len(confidence)) < confidence
    weights = np.vstack([np.ones(len(confidence), np.int32), bootstrap.resample_weights(len(confidence), 5, np.random.default_rng(6))])
    ours = replicates.ece(confidence, correct, weights)
    for k, w in enumerate(weights):
        picked = _resampled(range(len(confidence)), w)
        assert ours[k] == pytest.approx(expected_calibration_error(confidence[picked], correct[picked]), rel=1e-12)


def test_an_auroc_replicate_equals_sklearn_on_the_resampled_sets():
    """The stratified replicate: the in-distribution set resampled once for every OOD set, each set apart."""
    rng = np.random.default_rng(8)
    pos = np.round(rng.normal(1, 1, 60), 1)
    negs = [np.round(rng.normal(0, 1, 45), 1), np.round(rng.normal(0.5, 1, 30), 1)]  # rounded: ties
    sizes = [60, 45, 30]
    weights = np.vstack([np.ones(sum(sizes), np.int32), bootstrap.stratified_weights(sizes, 5, np.random.default_rng(9))])
    ours = replicates.auroc_mean(pos, negs, weights)
    for k, w in enumerate(weights):
        p = pos[_resampled(range(60), w[:60])]
        aucs = []
        for neg, start in zip(negs, (60, 105)):
            q = neg[_resampled(range(len(neg)), w[start:start + len(neg)])]
            aucs.append(roc_auc_score(np.r_[np.ones(len(p)), np.zeros(len(q))], np.r_[p, q]))
        assert ours[k] == pytest.approx(np.mean(aucs), rel=1e-12)


def test_an_mce_replicate_equals_the_formula_on_the_resampled_source_images():
    """The cluster bootstrap: a source image carries all 75 cells; mCE of a replicate equals
    bench.metrics.corruption's on the resampled list of source images."""
    from bench.metrics.corruption import CORRUPTIONS, corruption_metrics

    rng = np.random.default_rng(10)
    cells = [(c, s) for c in CORRUPTIONS for s in (1, 2, 3, 4, 5)]
    n = 40
    wrong = (rng.random((n, len(cells))) < np.linspace(0.2, 0.9, len(cells))).astype(float)
    present = np.ones_like(wrong)
    weights = np.vstack([np.ones(n, np.int32), bootstrap.resample_weights(n, 5, np.random.default_rng(11))])
    ours, ours_mean = replicates.mce(wrong, present, cells, weights), replicates.mce(wrong, present, cells, weights, what="mean_err_15")
    for k, w in enumerate(weights):
        picked = _resampled(range(n), w)
        errors = {c: {s: 100.0 * wrong[picked, j].mean() for j, (c2, s) in enumerate(cells) if c2 == c} for c in CORRUPTIONS}
        summary = corruption_metrics(errors)
        assert ours[k] == pytest.approx(summary["mce"], rel=1e-12) and ours_mean[k] == pytest.approx(summary["mean_error_15"], rel=1e-12)


def test_a_bleu_replicate_equals_pycocoevalcap_on_the_resampled_captions():
    """Corpus BLEU-1..4 of a replicate, from summed per-image counts, equals pycocoevalcap's Bleu(4)
    run on the resampled images (each copy under its own id)."""
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu

    from bench.metrics.captions import bleu_statistics

    rng = np.random.default_rng(12)
    words = "a man dog cat on the of with riding sitting red blue table street horse two people".split()
    sentence = lambda k: " ".join(rng.choice(words, k))  # noqa: E731
    gts = {i: [sentence(int(rng.integers(4, 12))) for _ in range(5)] for i in range(30)}
    res = {i: [sentence(int(rng.integers(2, 14)))] for i in range(30)}
    stats = np.array(bleu_statistics(gts, res))
    weights = np.vstack([np.ones(30, np.int32), bootstrap.resample_weights(30, 5, np.random.default_rng(13))])
    for k, w in enumerate(weights):
        picked = _resampled(range(30), w)
        with contextlib.redirect_stdout(io.StringIO()):
            expected, _ = Bleu(4).compute_score({j: gts[i] for j, i in enumerate(picked)}, {j: res[i] for j, i in enumerate(picked)}, verbose=0)
        for n in (1, 2, 3, 4):
            assert replicates.bleu(stats, w[None], n)[0] == pytest.approx(expected[n - 1], rel=1e-14, abs=1e-300)


def test_coverage_of_the_map_bootstrap():
    """500 simulated test sets drawn from a population of images whose mAP is known: the 95%
    percentile intervals of the image bootstrap cover it 95% +- 2% of the time."""
    rng = np.random.default_rng(14)
    k, pool = 3, 4000
    # per image of the population: each class's objects, and per detection (class, score, tp, fp)
    counts = rng.integers(0, 3, (pool, k))
    flags = []
    for i in range(pool):
        dets = []
        for c in range(k):
            for _ in range(counts[i, c]):
                if rng.random() < 0.8:  # found, with a score that tells hits from misses
                    dets.append((c, rng.normal(1.0, 1.0), True, False))
            for _ in range(rng.poisson(0.6)):
                dets.append((c, rng.normal(0.0, 1.0), False, True))
        flags.append(dets)

    def prepared(images):
        classes = []
        for c in range(k):
            d = sorted(((j, s, tp, fp) for j, i in enumerate(images) for (cc, s, tp, fp) in flags[i] if cc == c), key=lambda x: -x[1])
            classes.append((np.array([x[0] for x in d], np.int64), np.array([x[2] for x in d], bool), np.array([x[3] for x in d], bool)))
        return classes, counts[images]

    truth = replicates.voc_map(*prepared(np.arange(pool)), np.ones((1, pool), np.int32))[0]
    covered = 0
    for _ in range(500):
        images = rng.integers(0, pool, 300)
        classes, gt = prepared(images)
        values = replicates.voc_map(classes, gt, bootstrap.resample_weights(300, 400, rng))
        lo, hi = bootstrap.percentile_interval(values)
        covered += lo <= truth <= hi
    assert 0.93 * 500 <= covered <= 0.97 * 500, covered


@pytest.mark.parametrize("seed", range(3))
def test_an_ood_rate_replicate_equals_the_scorer_on_the_resampled_lists(seed):
    """TNR at TPR 95% (ODIN's width-weighted window), detection accuracy, AUPR-in/out, FPR at TPR
    95% (both conventions): a stratified replicate equals bench.metrics.ood on the resampled lists."""
    from bench.metrics.ood import ood_metrics

    rng = np.random.default_rng(20 + seed)
    m, n = 2500, 700  # enough in-distribution samples for cuts inside ODIN's TPR window
    pos, neg = np.round(rng.normal(1.2, 1, m), 3), np.round(rng.normal(0, 1, n), 3)  # rounded: ties
    weights = np.vstack([np.ones(m + n, np.int32), bootstrap.stratified_weights([m, n], 4, np.random.default_rng(seed))])
    for k, w in enumerate(weights):
        expected = ood_metrics(pos[_resampled(range(m), w[:m])], neg[_resampled(range(n), w[m:])])
        for metric in replicates.OOD_RATES:
            ours = replicates.ood_rate(pos, neg, w[None, :m], w[None, m:], metric)[0]
            assert 100 * ours == pytest.approx(expected[metric], rel=1e-9, abs=1e-9), (metric, k)


def test_ood_rates_of_several_sets_equal_the_scorer_and_each_metric_alone():
    """The mean over OOD sets, the in-distribution set's cumulative weights shared by every set: each
    replicate equals the mean of bench.metrics.ood on the resampled lists, and asking for a subset
    of the metrics gives the same values as asking for all of them."""
    from bench.metrics.ood import ood_metrics

    rng = np.random.default_rng(31)
    m = 2000
    pos = np.round(rng.normal(1.2, 1, m), 3)
    negs = [np.round(rng.normal(0, 1, 300), 3), np.round(rng.normal(0.6, 1, 200), 3)]
    sizes = [m, 300, 200]
    weights = np.vstack([np.ones(sum(sizes), np.int32), bootstrap.stratified_weights(sizes, 3, np.random.default_rng(32))])
    every = replicates.ood_rates_mean(pos, negs, weights)
    some = replicates.ood_rates_mean(pos, negs, weights, ("fpr_at_tpr95", "aupr_out"))
    assert set(some) == {"fpr_at_tpr95", "aupr_out"}
    for metric in some:
        np.testing.assert_array_equal(some[metric], every[metric])
    for k, w in enumerate(weights):
        p = pos[_resampled(range(m), w[:m])]
        per_set = [ood_metrics(p, neg[_resampled(range(len(neg)), w[start:start + len(neg)])]) for neg, start in zip(negs, (m, m + 300))]
        for metric in replicates.OOD_RATES:
            assert 100 * every[metric][k] == pytest.approx(np.mean([d[metric] for d in per_set]), rel=1e-9, abs=1e-9), (metric, k)
    with pytest.raises(ValueError, match="unknown OOD metric"):
        replicates.ood_rates_mean(pos, negs, weights, ("auroc",))


def test_a_group_bootstrap_gives_each_metric_what_a_bootstrap_of_it_alone_gives():
    """compare_bootstrap_many (one pass for the OOD threshold metrics of one score) against
    compare_bootstrap of each metric by itself, with the same seed: the same Paired, field by field."""
    rng = np.random.default_rng(33)
    sizes = [400, 120, 90]
    pos_a, pos_b = rng.normal(1, 1, 400), rng.normal(1.1, 1, 400)
    negs_a = [rng.normal(0, 1, 120), rng.normal(0.3, 1, 90)]
    negs_b = [x + rng.normal(0, 0.3, len(x)) for x in negs_a]
    kinds = {f"ood_mean:{k}": 100.0 for k in replicates.OOD_RATES}
    group = paired.compare_bootstrap_many(paired.GROUPS["ood_mean"](list(kinds)), (pos_a, negs_a), (pos_b, negs_b), sum(sizes), kinds, 300, 5, strata=sizes)
    for kind in kinds:
        alone = paired.compare_bootstrap(paired.STATISTICS[kind], (pos_a, negs_a), (pos_b, negs_b), sum(sizes), 100.0, 300, 5, kind, strata=sizes)
        for name, value in alone.to_dict().items():
            if isinstance(value, float):
                assert group[kind].to_dict()[name] == pytest.approx(value, rel=1e-12, abs=1e-12), (kind, name)
            else:
                assert group[kind].to_dict()[name] == value, (kind, name)


def test_kept_weights_equal_a_fresh_draw_and_cannot_be_changed():
    """bootstrap.replicate_weights hands the metrics of one task the same weights again: they must be
    those a fresh generator with the seed draws, and read-only."""
    first = list(bootstrap.replicate_weights(50, 30, 7, [30, 20]))
    again = list(bootstrap.replicate_weights(50, 30, 7, [30, 20]))
    fresh = bootstrap.stratified_weights([30, 20], 30, np.random.default_rng(7))
    assert again[0] is first[0]
    np.testing.assert_array_equal(np.concatenate(again), fresh)
    with pytest.raises(ValueError):
        again[0][0, 0] = 3
    other = np.concatenate(list(bootstrap.replicate_weights(50, 30, 8, [30, 20])))
    assert not np.array_equal(other, fresh)


def test_a_relative_mce_replicate_resamples_the_clean_error_with_the_same_images():
    from bench.metrics.corruption import CORRUPTIONS, corruption_metrics

    rng = np.random.default_rng(15)
    cells = [(c, s) for c in CORRUPTIONS for s in (1, 2, 3, 4, 5)]
    n = 40
    wrong = (rng.random((n, len(cells))) < 0.6).astype(float)
    clean = (rng.random(n) < 0.3).astype(float)
    weights = np.vstack([np.ones(n, np.int32), bootstrap.resample_weights(n, 5, np.random.default_rng(16))])
    ours = replicates.mce(wrong, np.ones_like(wrong), cells, weights, what="relative_mce", clean_wrong=clean)
    for k, w in enumerate(weights):
        picked = _resampled(range(n), w)
        errors = {c: {s: 100.0 * wrong[picked, j].mean() for j, (c2, s) in enumerate(cells) if c2 == c} for c in CORRUPTIONS}
        assert ours[k] == pytest.approx(corruption_metrics(errors, 100.0 * clean[picked].mean())["relative_mce"], rel=1e-12)
