"""Ceilometer-compatible pipeline definitions and routing."""

from telemetry_lib.pipeline.definitions import PipelineDefinition
from telemetry_lib.pipeline.definitions import PollingDefinition
from telemetry_lib.pipeline.manager import PipelineManager

__all__ = ['PipelineDefinition', 'PollingDefinition', 'PipelineManager']
