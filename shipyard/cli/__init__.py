"""The ``shipyard`` command line.

``import shipyard.cli`` stays light (click only): each command's module, and
with it rich and the store backends, is imported when that command runs.
"""

from shipyard.cli._main import LazyGroup, cli, main

__all__ = ["LazyGroup", "cli", "main"]
