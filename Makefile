# Two commands on a fresh Debian machine: `make run` and `make test`.
# Both install what is missing (Debian packages, the .venv) and nothing twice.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MOUNT ?= /mnt/cdfs
ROOT ?= /var/lib/cdfs
STATE ?= /run/cdfs
PYTEST_ARGS ?=
APT_PACKAGES := fuse3 libfuse3-dev pkg-config gcc python3-venv runc conmon docker-registry \
	busybox-static skopeo umoci containerd iproute2 zstd util-linux procps \
	rsync jq less

.PHONY: run test deps apt lint typecheck docs bench clean

deps: apt $(VENV)/.installed

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

run: deps
	@$(VENV)/bin/cdfs serve --mount $(MOUNT) --root $(ROOT) --state $(STATE) --banner

test: deps lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy -p base -p content -p runtime -p mountpoint -p cdfs

docs: $(VENV)/.installed
	$(VENV)/bin/cdfs docs > docs/filesystem.md

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf build $(VENV)
