"""Torch side: an evaluation job (run.py) and its text metrics."""
