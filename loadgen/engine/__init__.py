"""Sending load: schedule, preflight, coordinator, worker processes, the client, the cluster.

Nothing here is imported by the package on its own: worker processes must be able to
monkey-patch gevent before any of it is imported."""
