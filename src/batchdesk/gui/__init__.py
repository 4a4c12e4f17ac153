"""The desktop window: the only package that imports PySide6.

Widgets never touch the database or Pillow themselves: they hand functions of the Qt-free
packages to `background.BackgroundTasks` and get the results back on the GUI thread.
"""
