"""The mounted tree: the only package that imports pyfuse3."""
