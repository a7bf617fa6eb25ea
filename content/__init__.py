"""Bytes at rest: the CAS, images, registries, layer unpacking and snapshots."""
