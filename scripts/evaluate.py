#!/usr/bin/env python
"""Replay data sets with a known future (generated regimes, the CDNOW log) and report model quality.

Same as ``journeyflow evaluate``; see ``journeyflow evaluate --help``.
"""

import sys

from journeyflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
