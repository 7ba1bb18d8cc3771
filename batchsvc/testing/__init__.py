"""Test helpers for backend authors, public: the storage conformance suite.

`from batchsvc.testing import StorageConformance`, subclass it in a test module, and provide a
`storage` fixture that yields an entered backend. Importing this package needs pytest and
pytest-asyncio.

What `__all__` names is the stable surface (`batchsvc.testing.conformance.StorageConformance`,
the older path, keeps working); the `conformance_*` modules are its parts, and the tests they
hold may grow with the contract. docs/writing-a-backend.md says how to run it.
"""

from batchsvc.testing._base import LATER, NOW, OTHER, TENANT, make_memory
from batchsvc.testing.conformance import StorageConformance

__all__ = ["LATER", "NOW", "OTHER", "TENANT", "StorageConformance", "make_memory"]
