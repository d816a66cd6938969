"""Data at rest and pure table transforms. No Dagster, no torch."""
