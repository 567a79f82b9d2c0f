"""The dataflows (replay, live); flows.replay_owners is compiled with mypyc when built: see journeyflow/compiled.py."""

from journeyflow.compiled import use_compiled

use_compiled(__path__, __name__)
