# mautic-operator. `make demo` runs the main job on a local control plane; `make test` runs every
# test. Both set up everything they need on a fresh machine (see hack/controlplane.sh).

IMG ?= ghcr.io/mautic-operator/mautic-operator:dev
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mautic-operator
BIN_DIR ?= $(CACHE_DIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(BIN_DIR)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(BIN_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUBECTL ?= kubectl
# helm, built from hack/helm (its own module) with the release build's version stamps.
HELM_VERSION ?= v3.22.0
HELM ?= $(BIN_DIR)/helm-$(HELM_VERSION)
HELM_K8S_MINOR ?= 37
GO_TEST_FLAGS ?= -count=1
export MAUTIC_OPERATOR_CACHE := $(CACHE_DIR)

# Version stamping (internal/version) of `make build` and `make image`; the Dockerfile takes the
# same values as build arguments.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION_PKG := github.com/mautic-operator/mautic-operator/internal/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)
# Every time inside the image is the commit time, so the same commit gives the same image digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC from the markers in api/ and internal/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	@# The chart renders these generated files (charts/mautic-operator/files); test/chart checks the copies.
	rm -f charts/mautic-operator/files/crds/*.yaml
	cp config/crd/bases/*.yaml charts/mautic-operator/files/crds/
	cp config/rbac/role.yaml charts/mautic-operator/files/manager-role.yaml
	cp config/prometheus/alerts.yaml charts/mautic-operator/files/alerts.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods of the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yml); built from the Go module proxy on first use.
	$(GOLANGCI_LINT) run ./...

.PHONY: controlplane
controlplane: ## Build kube-apiserver and etcd from pinned Go modules into the cache (first use only).
	@hack/controlplane.sh >/dev/null

.PHONY: test
test: controlplane $(HELM) $(CONTROLLER_GEN) ## Run every test: unit, the client against the Mautic test server, envtest controller, plugin, GitOps health, e2e, a short chaos run, the chart (helm lint/template) and the image tool.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" HELM=$(HELM) CONTROLLER_GEN=$(CONTROLLER_GEN) KUBECTL=$(KUBECTL) go test $(GO_TEST_FLAGS) ./... 
	cd hack/image && go test $(GO_TEST_FLAGS) ./...

.PHONY: test-e2e
test-e2e: controlplane ## Run the end-to-end suite: the manager binary against the local control plane.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go test $(GO_TEST_FLAGS) -v ./test/e2e/...

# The real-node suite (test/node, docs/node.md): hack/node/node.sh brings up a single-node cluster
# on this machine (kubelet, containerd, kube-proxy and the control plane; root needed; the node
# binaries are built into the cache on first use), the suite runs against it, and the cluster comes
# down, restoring the host, whether the suite passed or not. Its measurements go to NODE_REPORT.
# NODE_TEST_RUN selects tests (go test -run), KUBELET_SYNC_FREQUENCY the kubelet's Secret volume
# sync (default 5s, see docs/node.md), NODE_TEST_ENV adds variables to the suite's environment.
NODE_REPORT ?= $(CURDIR)/bin/node-report.md
NODE_TEST_TIMEOUT ?= 45m
NODE_TEST_RUN ?= .
NODE_TEST_ENV ?=
KUBELET_SYNC_FREQUENCY ?=
NODE_PROPAGATION_SAMPLES ?= 8

.PHONY: test-node
test-node: controlplane $(HELM) $(CONTROLLER_GEN) ## Run the node suite on a real single-node cluster it brings up and down (root): Helm and install.yaml installs, rotations, restarts, upgrade.
	@rm -f $(NODE_REPORT)
	@KUBELET_SYNC_FREQUENCY=$(KUBELET_SYNC_FREQUENCY) hack/node/node.sh up >/dev/null || { hack/node/node.sh down; exit 1; }
	@status=0; env $$(hack/node/node.sh env) HELM=$(HELM) KUBECTL=$(KUBECTL) MAUTIC_NODE_REPORT=$(NODE_REPORT) $(NODE_TEST_ENV) \
		go test -count=1 -v -timeout $(NODE_TEST_TIMEOUT) -run '$(NODE_TEST_RUN)' ./test/node || status=$$?; \
	hack/node/node.sh down; exit $$status

.PHONY: node-propagation
node-propagation: ## Time NODE_PROPAGATION_SAMPLES Secret volume updates on a node with the kubelet's default sync (1m); report in NODE_REPORT.
	$(MAKE) test-node KUBELET_SYNC_FREQUENCY=1m NODE_TEST_RUN=TestSecretPropagation \
		NODE_TEST_ENV=MAUTIC_NODE_PROPAGATION_SAMPLES=$(NODE_PROPAGATION_SAMPLES)

.PHONY: node-up
node-up: controlplane ## Bring up the real-node test bed and leave it running (hack/node/node.sh up); `make node-down` stops it.
	hack/node/node.sh up

.PHONY: node-down
node-down: ## Stop the real-node test bed and undo what it changed on the host.
	hack/node/node.sh down

# The long chaos run of test/chaos (`make test` runs a short one): its markdown report goes to CHAOS_REPORT.
CHAOS_DURATION ?= 10m
CHAOS_MANAGERS ?= 2
CHAOS_REPORT ?= $(CURDIR)/bin/chaos-report.md

.PHONY: test-chaos
test-chaos: controlplane build ## Run the chaos suite for CHAOS_DURATION (default 10m): SIGTERM, SIGKILL, API-server outages and Mautic faults against the manager binary; report in CHAOS_REPORT.
	@mkdir -p $(dir $(CHAOS_REPORT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_MANAGERS=$(CHAOS_MANAGERS) CHAOS_REPORT=$(CHAOS_REPORT) \
		CHAOS_COMMAND="make test-chaos CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_MANAGERS=$(CHAOS_MANAGERS)" go test -count=1 -v -timeout 30m ./test/chaos/...

.PHONY: chaos-report
chaos-report: controlplane build ## Run test-chaos and put its report into docs/reliability.md (hack/chaos.sh).
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_MANAGERS=$(CHAOS_MANAGERS) CHAOS_REPORT=$(CHAOS_REPORT) hack/chaos.sh

.PHONY: bench
bench: controlplane ## Run the benchmarks (docs/benchmarks.md is the report of one run).
	hack/bench.sh

.PHONY: bench-scale
bench-scale: controlplane ## Measure the manager binary with SCALE_CONNECTIONS (default 1000) connections; report in SCALE_REPORT (docs/scale.md).
	hack/bench-scale.sh

.PHONY: verify
verify: manifests generate ## Regenerate and fail when generated files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts)" ]; then \
		echo "Generated files are stale: run 'make manifests generate' and commit:"; \
		git status --porcelain -- api config charts; git diff -- api config charts | head -50; exit 1; \
	fi
	@if [ -n "$$(gofmt -l $$(git ls-files '*.go'))" ]; then echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; fi
	go vet ./...

##@ Run

.PHONY: demo
demo: controlplane build ## Local control plane + Mautic test server + manager binary; apply config/samples and show the result.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" go run ./hack/demo

.PHONY: build
build: ## Build the manager binary and the kubectl plugin into bin/, stamped with VERSION and COMMIT.
	go build -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	go build -ldflags "$(LDFLAGS)" -o bin/kubectl-mautic ./cmd/kubectl-mautic

.PHONY: run
run: ## Run the manager against the cluster of the current kubeconfig.
	go run ./cmd/manager

INSTALLER ?= dist/install.yaml

.PHONY: build-installer
build-installer: manifests ## Write INSTALLER (dist/install.yaml): CRD, RBAC, manager with image IMG.
	mkdir -p $(dir $(INSTALLER))
	$(KUBECTL) kustomize config/default | sed "s#image: controller:latest#image: $(IMG)#" > $(INSTALLER)

##@ Image

# make image builds IMAGE_PACKAGE into the multi-arch OCI image IMG without a container engine
# (hack/image): the OCI layout bin/image/<name>/ and its tarball bin/image/<name>.tar, where <name>
# is the package's last path element (bin/image/manager.tar for the manager). Any main package:
#   make image IMAGE_PACKAGE=./hack/pause IMG=example.com/pause:dev
# Import on a node: ctr -n k8s.io images import --all-platforms bin/image/manager.tar
IMAGE_PACKAGE ?= ./cmd/manager
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_OUT ?= bin/image/$(notdir $(IMAGE_PACKAGE))
IMAGE_TOOL ?= bin/image-tool

.PHONY: image-tool
image-tool: ## Build the image tool (hack/image) as bin/image-tool; run bin/image-tool --help for its flags.
	cd hack/image && go build -o $(CURDIR)/$(IMAGE_TOOL) .

.PHONY: image
image: image-tool ## Build IMAGE_PACKAGE (./cmd/manager) as image IMG for IMAGE_PLATFORMS into IMAGE_OUT/ (OCI layout) and IMAGE_OUT.tar.
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGE_TOOL) --package $(IMAGE_PACKAGE) --name $(IMG) \
		--platforms $(IMAGE_PLATFORMS) --ldflags "$(LDFLAGS)" \
		--label org.opencontainers.image.version=$(VERSION) --label org.opencontainers.image.revision=$(COMMIT) \
		--label org.opencontainers.image.source=https://github.com/mautic-operator/mautic-operator \
		--oci-layout $(IMAGE_OUT) --tarball $(IMAGE_OUT).tar

.PHONY: test-image
test-image: ## Run the image tool's tests (its own module): reproducible digest, user 65532, one layer holding only the binary.
	cd hack/image && go test $(GO_TEST_FLAGS) ./...

##@ Release

KREW_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
KREW_DIR ?= dist/krew

.PHONY: krew-manifest
krew-manifest: ## Build the kubectl-mautic archives of KREW_PLATFORMS into KREW_DIR and render KREW_DIR/mautic.yaml for VERSION (a tag like v1.2.3).
	rm -rf $(KREW_DIR) && mkdir -p $(KREW_DIR)
	@set -e; for p in $(KREW_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; d=$(KREW_DIR)/kubectl-mautic_$${os}_$${arch}; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $$d/kubectl-mautic$$ext ./cmd/kubectl-mautic; \
		cp LICENSE $$d/ 2>/dev/null || true; \
		tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner -C $$d -cf - . | gzip -n > $$d.tar.gz; \
		rm -rf $$d; \
	done
	go run ./hack/krew --version $(VERSION) --archives $(KREW_DIR) > $(KREW_DIR)/mautic.yaml
	@echo "Wrote $(KREW_DIR)/mautic.yaml and its archives"

CHART_VERSION ?= $(patsubst v%,%,$(VERSION))

.PHONY: chart-package
chart-package: $(HELM) ## Package charts/mautic-operator as dist/mautic-operator-CHART_VERSION.tgz, version and appVersion from VERSION.
	mkdir -p dist
	$(HELM) package charts/mautic-operator --destination dist --version $(CHART_VERSION) --app-version $(VERSION)

##@ Deployment

PLUGIN_DIR ?= $(or $(shell go env GOBIN),$(shell go env GOPATH)/bin)

.PHONY: install-plugin
install-plugin: ## Install the kubectl plugin as PLUGIN_DIR/kubectl-mautic (PLUGIN_DIR must be on PATH): `kubectl mautic --help`.
	GOBIN=$(PLUGIN_DIR) go install ./cmd/kubectl-mautic
	@echo "Installed $(PLUGIN_DIR)/kubectl-mautic; with $(PLUGIN_DIR) on PATH, run: kubectl mautic --help"

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD (and every MauticConnection) from the cluster.
	$(KUBECTL) delete -k config/crd --ignore-not-found

.PHONY: deploy
deploy: manifests ## Deploy the operator with image IMG to the cluster of the current kubeconfig.
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	$(KUBECTL) kustomize config/default | sed "s#image: controller:latest#image: $(IMG)#" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

$(GOLANGCI_LINT):
	mkdir -p $(BIN_DIR)/golangci-lint-build
	GOBIN=$(BIN_DIR)/golangci-lint-build go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN_DIR)/golangci-lint-build/golangci-lint $(GOLANGCI_LINT)

.PHONY: helm
helm: $(HELM) ## Build helm from hack/helm into the cache (first use only; heavy).

.PHONY: test-chart
test-chart: $(HELM) $(CONTROLLER_GEN) ## Lint and render charts/mautic-operator over several value sets and compare it with config/ (test/chart).
	HELM=$(HELM) CONTROLLER_GEN=$(CONTROLLER_GEN) KUBECTL=$(KUBECTL) go test $(GO_TEST_FLAGS) ./test/chart/...

$(HELM):
	mkdir -p $(BIN_DIR)
	cd hack/helm && go build -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
		-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR) \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR)" \
		-o $(HELM) helm.sh/helm/v3/cmd/helm

$(CONTROLLER_GEN):
	mkdir -p $(BIN_DIR)
	cd hack/tools && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
