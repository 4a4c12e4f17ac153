"""The bundle's entry point: the same `batchdesk` command as `pip install` gives."""

import multiprocessing
import sys

from batchdesk.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # harmless where unused; needed if a child process starts
    sys.exit(main())
