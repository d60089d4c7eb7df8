"""bench: evaluation and transfer benchmarks for pretrained vision backbones.

Importing this package must stay cheap (no torch): `bench --help` and `bench list` rely on it.
"""

__version__ = "0.1.0"
