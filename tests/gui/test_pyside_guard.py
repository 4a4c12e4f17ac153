"""The installed PySide6 survives a long session (6.12.0 on Python 3.11 does not)."""

import subprocess
import sys

# Each call returns None through the binding: 6.12.0 on 3.11 drops a reference to None on every
# such call and aborts the process (none_dealloc) after some thousands of them.
MANY_CALLS = """
from PySide6.QtCore import QObject
item = QObject()
for i in range(200_000):
    item.setObjectName("x")
    item.blockSignals(False)
print("survived")
"""


def test_many_calls_returning_none_do_not_crash_the_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MANY_CALLS], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "survived"), done.stderr[-2000:]
