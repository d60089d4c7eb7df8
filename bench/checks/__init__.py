"""`bench check` and `bench compare`: stored results of two checkpoints paired on the same samples.

pairing: which records stand for each side (one per seed), refusing pairs scored on other data
or settings, and the per-sample rows joined on sample id; check: every metric compared with its
declared procedure, seeds combined, Holm, verdicts; verdicts: the tolerance file and the verdict
rule; report: the check's table (Markdown) and JSON; compare: the per-image drill-down.
"""
