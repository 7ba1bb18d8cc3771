"""Storage backends shipped with batchsvc, each registered under `batchsvc.backends`."""
