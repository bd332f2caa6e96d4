"""Runs across machines with Dask distributed (never a home-made protocol)."""
