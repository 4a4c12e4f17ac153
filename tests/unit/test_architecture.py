"""The layering rules, checked on the source rather than hoped for."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "batchdesk"
QT_MODULES = ("PySide6", "shiboken6")
# Layer -> packages it must not import (arrows point down: gui -> jobs/export/storage -> domain).
FORBIDDEN = {
    "domain": (
        "batchdesk.storage",
        "batchdesk.jobs",
        "batchdesk.export",
        "batchdesk.gui",
        "sqlalchemy",
        "psycopg",
    ),
    "storage": ("batchdesk.jobs", "batchdesk.export", "batchdesk.gui"),
    "jobs": ("batchdesk.export", "batchdesk.gui"),
    "export": ("batchdesk.jobs", "batchdesk.gui"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def python_files(*, outside: str | None = None, inside: str | None = None) -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    if outside:
        files = [f for f in files if outside not in f.relative_to(SRC).parts[:1]]
    if inside:
        files = [f for f in files if f.relative_to(SRC).parts[0] == inside]
    return files


def test_nothing_outside_gui_imports_qt() -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in python_files(outside="gui")
        for name in imported_modules(path)
        if name.split(".")[0] in QT_MODULES
    ]
    assert offenders == []


def test_layers_import_only_downwards() -> None:
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for layer, forbidden in FORBIDDEN.items()
        for path in python_files(inside=layer)
        for name in imported_modules(path)
        if name.startswith(forbidden)
    ]
    assert offenders == []


def test_the_check_sees_imports_at_all() -> None:
    # Guards the two tests above against passing because they look at nothing.
    assert len(python_files(outside="gui")) > 10
    assert "batchdesk.domain.naming" in imported_modules(SRC / "settings.py")


def test_the_fast_schema_check_knows_the_newest_migration() -> None:
    """upgrade() skips Alembic when the stored revision is HEAD_REVISION: it must be the head."""
    from batchdesk.storage import migrations_runner

    assert migrations_runner.head_revision() == migrations_runner.HEAD_REVISION


def test_the_app_and_the_window_do_not_import_sqlalchemy_alembic_or_keyring() -> None:
    """Each costs a few hundred ms at every start; they are imported only when needed."""
    import subprocess
    import sys

    probe = (
        "import sys, batchdesk.app, batchdesk.cli.batch_commands, batchdesk.gui.main_window; "
        "print(sorted(m for m in ('alembic', 'keyring', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
