"""Intervals and paired tests for bench's metrics (pure functions on numpy arrays).

proportion: Wilson intervals and the exact McNemar test for per-image correctness;
bootstrap: integer resampling weights (plain, stratified, clustered), percentile intervals and
bootstrap p-values; delong: AUROC variance and the test for two correlated AUCs; replicates: each
metric recomputed under resampling weights from its per-sample sufficient statistics; multiple:
Holm's step-down correction; paired: one metric of two checkpoints compared on the same samples.
"""
