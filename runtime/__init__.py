"""Processes: OCI specs, runc, monitors, cgroups and network namespaces."""
