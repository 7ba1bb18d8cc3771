"""The bundled embedders (backends/embedders/): contract, options, bounds."""
