"""journeyflow: a real-time personalization engine for customer journeys (see README.md)."""

import os

# OpenBLAS (numpy's and scipy's BLAS) starts a thread per core and lets them spin
# after each call; the models step's small fits and products gain nothing from
# them, and on a 2-core machine they take CPU from the dataflow's own worker:
# a replay of bench.py's small file took 0.9x the CPU time with one BLAS thread,
# same outputs (README, Performance). It must be set before numpy loads, so here,
# where every entry point (the CLI, flows, scripts) starts; an operator's own
# setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The parser's modules are compiled with mypyc when built (journeyflow/compiled.py).
from journeyflow.compiled import use_compiled  # noqa: E402

use_compiled(__path__, __name__)
