"""TuneBoard's engine: data, templates, models, training, evaluation, export and chat. Never imports gradio.

engine.core and engine.jobs are torch-free (the web process imports them); modeling, train, serve, evaluate and
export are the torch side, which the web process reaches only through engine.facade (tests/test_boundary.py).
"""
