# Two commands on a fresh Debian machine: `make run` and `make test`.
# Both install what is missing (Debian packages, the .venv) and nothing twice.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MOUNT ?= /mnt/cdfs
ROOT ?= /var/lib/cdfs
STATE ?= /run/cdfs
CRI ?=
CRI_LISTEN ?= unix:///run/cdfs/cri.sock
CRI_ROOT ?= /var/lib/cdfs-cri
PYTEST_ARGS ?=
APT_PACKAGES := fuse3 libfuse3-dev pkg-config gcc python3-venv runc conmon docker-registry \
	busybox-static skopeo umoci containerd iproute2 zstd util-linux procps \
	rsync jq less libc6-dev containernetworking-plugins iptables apache2-utils
PAUSE := cdfs/cri/pause/pause

# The CRI gRPC stubs, generated from their .proto by grpcio-tools (never committed): the
# recipe is cdfs/cri/api/protoc.py, the one setup.py uses for wheels and editable installs.
PROTOS := $(wildcard cdfs/cri/api/*.proto)
STUBS := $(PROTOS:.proto=_pb2.py)

.PHONY: run test deps apt lint typecheck wheel-check docs bench clean stubs

deps: apt $(VENV)/.installed stubs $(PAUSE)

# The pod sandbox's pause program, static so it runs in an image holding nothing else.
$(PAUSE): cdfs/cri/pause/pause.c
	python3 -m cdfs.cri.pause $@

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

stubs: $(STUBS)

$(STUBS): %_pb2.py: %.proto $(VENV)/.installed cdfs/cri/api/protoc.py
	$(PY) cdfs/cri/api/protoc.py

# `make run CRI=1` also serves kubelet's CRI over the tree (docs/kubernetes.md): the
# daemon in the background, `cdfs cri` in the foreground once the tree is mounted;
# Ctrl-C stops both.
run: deps
ifeq ($(CRI),)
	@$(VENV)/bin/cdfs serve --mount $(MOUNT) --root $(ROOT) --state $(STATE) --banner
else
	@$(VENV)/bin/cdfs serve --mount $(MOUNT) --root $(ROOT) --state $(STATE) & serve=$$!; \
	trap 'kill -TERM $$serve 2>/dev/null; wait $$serve' EXIT; \
	for i in $$(seq 300); do [ -f $(MOUNT)/version ] && break; \
		kill -0 $$serve 2>/dev/null || exit 1; sleep 0.1; done; \
	echo "cdfs is serving $(MOUNT); CRI on $(CRI_LISTEN) (crictl --runtime-endpoint $(CRI_LISTEN))"; \
	$(VENV)/bin/cdfs cri --mount $(MOUNT) --listen $(CRI_LISTEN) --root $(CRI_ROOT)
endif

test: deps lint typecheck wheel-check
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.installed stubs
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.installed stubs
	$(VENV)/bin/mypy -p base -p content -p runtime -p mountpoint -p cdfs

# A regular install must carry every module: a wheel installed into a fresh venv (which
# borrows only the third-party packages of .venv) imports all of them from outside the
# checkout, and its `cdfs` command runs.
WHEEL_DIR := build/wheel-check
wheel-check: $(VENV)/.installed
	@rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	@$(PY) -m pip wheel -q --no-deps -w $(WHEEL_DIR) . >/dev/null
	@python3 -m venv $(WHEEL_DIR)/venv
	@$(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
		> "$$($(WHEEL_DIR)/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/deps.pth"
	@$(WHEEL_DIR)/venv/bin/pip install -q --no-deps $(WHEEL_DIR)/cdfs-*.whl
	@cd $(WHEEL_DIR) && venv/bin/python ../../.ci/import_all.py && venv/bin/cdfs serve --help >/dev/null && venv/bin/cdfs cri --help >/dev/null

docs: $(VENV)/.installed
	$(VENV)/bin/cdfs docs > docs/filesystem.md

bench: deps
	$(PY) bench/run.py

clean:
	rm -rf build $(VENV)
