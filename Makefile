# nswire — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
CLANG ?= clang
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN := bin/nswire
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= /etc/systemd/system
# Test flags: -p 1 because the privileged tests share the host's bridge and bpffs.
TESTFLAGS ?= -v -count=1 -p 1 -timeout 60m

.PHONY: help deps build install test unit demo generate generate-check bench-attach bench-cni bench-start bench-stats bench-bpf bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: ## install and start what nswire and its tests need (apt packages, dockerd, bpffs, test image); idempotent
	bash test/setup.sh

build: ## build bin/nswire and the CNI plugin bin/nswire-cni, static (no clang needed: the eBPF objects are committed)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/nswire
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.buildVersion=$(VERSION)" -o bin/nswire-cni ./cmd/nswire-cni

install: build ## install bin/nswire as $(PREFIX)/bin/nswire and the systemd unit (then: systemctl daemon-reload && systemctl enable --now nswire)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/nswire
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed 's|/usr/local/bin/nswire|$(PREFIX)/bin/nswire|' dist/nswire.service > $(DESTDIR)$(UNITDIR)/nswire.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/nswire.service
	@if command -v systemctl >/dev/null && [ -d /run/systemd/system ] && [ -z "$(DESTDIR)" ]; then systemctl daemon-reload; fi

test: deps ## set up, then run every test (unit, BPF, privileged, end-to-end)
	CI=$${CI:-true} $(GO) test $(TESTFLAGS) ./...

unit: ## run the tests that need no root and no kernel state
	$(GO) test -count=1 ./netops ./control/... ./cmd/...

demo: deps build ## wire a tiny httpd container into docker0, show it, fetch its page, clean up
	bash test/demo.sh $(BIN)

generate: ## regenerate the eBPF objects with bpf2go (needs clang)
	BPF2GO_CC=$(CLANG) $(GO) generate ./bpf

generate-check: generate ## fail if the committed eBPF objects differ from a fresh generate
	@git diff --exit-code --stat -- bpf/ || { echo "bpf/: generated files are stale: run make generate and commit" >&2; exit 1; }

bench-attach: deps ## attach+detach per mode at rcu_expedited 1 and 0 (restored after), the steps of a detach, 16 attaches at once, the 1st vs the 200th attach
	CI=$${CI:-true} $(GO) test -run '^$$' -bench '^(BenchmarkAttach|BenchmarkDetachSteps|BenchmarkAttachConcurrent|BenchmarkAttachScaling)$$' -benchtime 1x -count 1 -v -timeout 30m ./test/

bench-cni: deps ## CLI attach/detach against cnitool ADD/DEL of the reference bridge plugin (installs them with test/cni-tools.sh)
	bash test/cni-tools.sh
	CI=$${CI:-true} $(GO) test -run '^$$' -bench '^BenchmarkCLIvsCNIBridge$$' -benchtime 1x -count 1 -v -timeout 30m ./test/

bench-start: ## process start: `nswire version` against a hello-world Go binary, and the top package inits
	$(GO) test -run '^$$' -bench '^BenchmarkStart$$' -benchtime 1x -count 1 -v -timeout 10m ./test/

bench-stats: deps ## time `nswire stats -o json` over 500 attached endpoints
	CI=$${CI:-true} $(GO) test -run '^$$' -bench 'BenchmarkStats500' -benchtime 1x -count 1 -v -timeout 30m ./test/

bench-bpf: ## per-packet time of the eBPF programs (BPF_PROG_TEST_RUN) and what flow accounting adds (BenchmarkFlowCost), pinned to one CPU
	taskset -c 1 $(GO) test -run '^$$' -bench . -count 5 ./bpf/

bench: deps build ## the fast path against plain bridging: nswire bench, default configuration, results under out/
	$(BIN) bench --out out --plot out/bench.png

clean: ## remove build output
	rm -rf bin
