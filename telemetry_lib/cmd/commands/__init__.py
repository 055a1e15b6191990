"""The commands of ``telemetry-lib``."""
