# The README's two commands: `make demo` and `make check`. Everything else is
# meson and ninja under build/ (and build-asan/ for the sanitizer run).

PYTHON ?= /usr/bin/python3
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan demo check check-unit check-integration check-asan check-long bench clean

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

demo: build
	./scripts/demo.sh $(BUILD)

check: build build-asan
	./scripts/check.sh $(BUILD) $(ASAN_BUILD)

check-long: build
	VSS_LONG=1 ./scripts/check.sh $(BUILD)

bench: build
	./bench/bench-create.sh $(BUILD)
	./bench/bench-hold.sh $(BUILD)
	./bench/bench-writers.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
