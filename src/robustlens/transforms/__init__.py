"""Batched image transforms on float pixels in [0, 1]: corruptions, frequency filters, PGD."""
