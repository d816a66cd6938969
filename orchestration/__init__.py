"""Dagster wiring only: definitions, resources, partitions, sensors, checks, config models."""
