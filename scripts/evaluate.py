#!/usr/bin/env python
"""Generate a data set with ground truth, replay it, print a model-quality report.

Same as ``journeyflow evaluate``; see ``journeyflow evaluate --help``.
"""

import sys

from journeyflow.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
