"""Console scripts: thin, they parse arguments, build objects and run."""
