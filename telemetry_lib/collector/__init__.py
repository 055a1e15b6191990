"""Collectors: pollsters (called on an interval) and listeners."""
