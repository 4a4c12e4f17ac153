"""Test settings shared by every tier."""

import os

# GUI tests never need a screen; set before anything can import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Real PostgreSQL for the tiers that use it (integration, gui); started only when asked for.
pytest_plugins = ["tests.database_fixtures"]

# The installer test builds the bundle and installs the .deb on this machine (as root): it runs
# only when asked for, by scripts/test-installer (which .ci/run calls), never by a plain pytest.
collect_ignore = [] if os.environ.get("BATCHDESK_TEST_INSTALLER") == "1" else ["installer"]
