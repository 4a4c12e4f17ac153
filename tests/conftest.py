"""Test settings shared by every tier."""

import os

# GUI tests never need a screen; set before anything can import Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Real PostgreSQL for the tiers that use it (integration, gui); started only when asked for.
pytest_plugins = ["tests.database_fixtures"]
