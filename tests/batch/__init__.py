"""The batch executor (batchsvc/batch/): every batch option, bulk calls, parallel runs."""
