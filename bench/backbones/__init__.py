"""Backbones: fetching weight files, reading checkpoint formats, building and strictly loading models."""
