"""Everything that runs a network or computes on its outputs. No Dagster imports."""
