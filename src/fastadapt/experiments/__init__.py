"""One module per paper experiment; the CLI reads the registry in fastadapt.experiments.registry."""
