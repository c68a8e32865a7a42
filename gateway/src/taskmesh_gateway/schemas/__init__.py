"""Pydantic models of the public HTTP API and their conversions to and from the v1 protos."""
