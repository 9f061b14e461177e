"""TuneBoard's engine: data, templates, models, training, evaluation, export and chat. Never imports gradio.

engine.core and engine.jobs are torch-free (the web process imports them); modeling, train, serve, evaluate and
export are the torch side, which the web process reaches only through engine.facade (tests/test_boundary.py).
"""

import logging

# bitsandbytes (pulled in by galore-torch and apollo-torch) warns at import, on CPUs with AVX512-BF16, that an
# optional kernel hub package is missing: noise in every job log and chat load, with nothing for the user to do.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
