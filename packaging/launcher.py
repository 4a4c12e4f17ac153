"""The bundle's entry point: the same `batchdesk` command as `pip install` gives."""

import multiprocessing
import os
import sys

if getattr(sys, "frozen", False) and sys.platform.startswith("linux"):
    # The bootloader restarted this process with the bundle's libraries first on
    # LD_LIBRARY_PATH and its own _PYI_ variables, and PyInstaller's Qt hook pointed
    # QT_PLUGIN_PATH at the bundle's Qt (this process finds it without: the hook also gave Qt
    # its prefix). The programs batchdesk starts (a studio's tools in an `external` step; the
    # embedded server, which finds its libraries by itself) get the user's environment back:
    # a system tool must load the system's libraries and Qt plugins, and one that is itself a
    # PyInstaller program must not take itself for part of this bundle.
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = original
    for name in [name for name in os.environ if name.startswith("_PYI_")]:
        del os.environ[name]
    os.environ.pop("QT_PLUGIN_PATH", None)
    os.environ.pop("QML2_IMPORT_PATH", None)

from batchdesk.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # harmless where unused; needed if a child process starts
    sys.exit(main())
