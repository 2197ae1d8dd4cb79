# make build          the binary for this machine, in dist/
# make packages       .deb and .rpm for amd64 and arm64, in dist/
# make lint-packages  lintian on the .debs, rpmlint on the .rpms
# make test           go test ./...
# make bench          scripts/bench.sh: wrk against the daemon and nginx per core (both pinned), as shipped,
#                     and behind nginx (upstream keep-alive), with the spread of the rounds; RSS, cold
#                     start, rebuild (README.md, Performance; BENCH_* variables: see the script)
#
# Needs Go and git; nfpm comes from go.mod (go tool nfpm), so a clean
# checkout builds the packages with nothing but the Go module proxy.

GO ?= go
VERSION := $(shell sh packaging/version.sh)
MAINTAINER ?= mailautoconf maintainers <maintainers@mailautoconf.invalid>
ARCHES := amd64 arm64
# Reproducible: file times in the packages are the commit's.
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

# -X main.version only once cmd/mailautoconf declares one.
HAVE_VERSION_VAR := $(shell grep -qsE '^(var)?[[:space:]]*version[[:space:]]+(string|=)' cmd/mailautoconf/*.go && echo yes)
LDFLAGS := -s -w $(if $(HAVE_VERSION_VAR),-X main.version=$(VERSION))
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

.PHONY: build packages lint-packages test bench clean

build:
	$(GOBUILD) -o dist/mailautoconf ./cmd/mailautoconf

dist/build/%/mailautoconf: FORCE
	GOOS=linux GOARCH=$* $(GOBUILD) -o $@ ./cmd/mailautoconf

dist/build/mailautoconf.8.gz: packaging/mailautoconf.8
	@mkdir -p $(@D)
	gzip -9n <$< >$@

dist/build/changelog.yml: FORCE
	@mkdir -p $(@D)
	sh packaging/changelog.sh '$(VERSION)-1' '$(MAINTAINER)' >$@

packages: $(foreach a,$(ARCHES),dist/build/$(a)/mailautoconf) dist/build/mailautoconf.8.gz dist/build/changelog.yml
	@for arch in $(ARCHES); do \
		for fmt in deb rpm; do \
			env -u GOOS -u GOARCH ARCH=$$arch VERSION='$(VERSION)' MAINTAINER='$(MAINTAINER)' \
				$(GO) tool nfpm package -p $$fmt -f packaging/nfpm.yaml -t dist/ || exit 1; \
		done; \
	done
	@ls -1 dist/*.deb dist/*.rpm

lint-packages:
	sh packaging/lint.sh dist/mailautoconf_$(VERSION)-1_*.deb dist/mailautoconf-$(VERSION)-1.*.rpm

test:
	$(GO) test ./...

bench:
	bash scripts/bench.sh

clean:
	rm -rf dist

FORCE:
