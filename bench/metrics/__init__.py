"""Metric math as pure functions (arrays in, numbers out), shared by tasks, `bench score` and tests."""
