"""Torch side: a training job (run.py) and what it is built from: one trainer per stage, batch collators, the
answer-only loss, lean activations, packed-sample attention and probe questions."""
