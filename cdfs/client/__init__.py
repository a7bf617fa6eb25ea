"""Clients of the mounted tree: the `cdfs` commands for people. They use nothing but
files on the mount (no import of the daemon's services), as any program could."""
