"""The long-running agent: scheduling, routing, health and self-metrics."""
