"""Import every module of the installed cdfs packages (not the source tree): run from
outside the checkout by `make wheel-check`, it fails when a wheel lacks a module."""

import importlib
import pkgutil
import sys

PACKAGES = ("base", "content", "runtime", "mountpoint", "cdfs")

count = 0
for top in PACKAGES:
    package = importlib.import_module(top)
    if "site-packages" not in (package.__file__ or ""):
        sys.exit(f"{top} was imported from {package.__file__}, not from the installed wheel")
    for module in pkgutil.walk_packages(package.__path__, top + "."):
        if module.name.endswith(".__main__"):  # a program (python -m), run, not imported
            continue
        importlib.import_module(module.name)
        count += 1
print(f"wheel-check: {count} modules import from the installed wheel")
