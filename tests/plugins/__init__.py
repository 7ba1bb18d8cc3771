"""Tests of batchsvc/plugins/: finding plugins, reading their options, starting them."""
