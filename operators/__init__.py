"""Per-user operators (compiled with mypyc when built: see journeyflow/compiled.py)."""

from journeyflow.compiled import use_compiled

use_compiled(__path__, __name__)
