"""Test kits shipped with Shipyard, for its own tests and for third-party backends.

Imports pytest and NumPy; the library itself never imports this package.
"""

from shipyard.testing.store_conformance import StoreConformance

__all__ = ["StoreConformance"]
