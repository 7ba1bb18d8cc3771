"""Test helpers for backend authors: the storage conformance suite.

`from batchsvc.testing import StorageConformance`, subclass it in a test module, and provide a
`storage` fixture that yields an entered backend. Importing this package needs pytest and
pytest-asyncio.
"""

from batchsvc.testing._base import LATER, NOW, OTHER, TENANT, make_memory
from batchsvc.testing.conformance import StorageConformance

__all__ = ["LATER", "NOW", "OTHER", "TENANT", "StorageConformance", "make_memory"]
