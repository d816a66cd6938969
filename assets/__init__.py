"""Thin asset definitions: read inputs, call models/ and lakehouse/, write, return metadata."""
