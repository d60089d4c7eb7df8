"""Captioning transfer: the NIC (Show and Tell) decoder on a backbone's pooled feature, its
vocabulary, beam search, and its cached training stage."""
