"""The errors an operation reports are made in one place (`batchsvc.batch.failures`); storage
faults map to codes there once, with the message of what was running."""

from __future__ import annotations

import pytest

from batchsvc.batch.failures import StorageCall, storage_failure
from batchsvc.errors import BackendError, CorruptBackendError, ErrorCode


@pytest.mark.parametrize(
    ("during", "damaged", "failed"),
    [
        ("operation", "the stored data is damaged; this cannot succeed", "storage failed"),
        ("read", "the stored data is damaged", "storage failed"),
        (
            "transaction",
            "the stored data is damaged; nothing was changed",
            "the storage backend could not commit the batch; nothing was changed",
        ),
    ],
)
def test_damaged_data_is_internal_and_any_other_fault_unavailable(
    during: StorageCall, damaged: str, failed: str
) -> None:
    error = storage_failure(CorruptBackendError("the file x.db is damaged"), during)
    assert (error.code, error.message, error.details) == (ErrorCode.INTERNAL_ERROR, damaged, {})
    for fault in (BackendError("down"), OSError("disk")):
        error = storage_failure(fault, during)
        assert (error.code, error.message) == (ErrorCode.BACKEND_UNAVAILABLE, failed)
        api = error.api_error()
        assert (api.code, api.message, api.status) == (error.code, error.message, 503)
