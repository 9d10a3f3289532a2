# The README's two commands: `make demo` and `make check`. Everything else is
# meson and ninja under build/ (and build-asan/ for the sanitizer run,
# build-fuzz/ for the fuzz targets, build-scan/ for the static analyzer).

PYTHON ?= /usr/bin/python3
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
SCAN_BUILD ?= build-scan
# make fuzz FUZZ_SECONDS=600: how long each target runs.
FUZZ_SECONDS ?= 300

.PHONY: all deps build build-asan build-fuzz install demo check check-unit check-integration check-asan check-long check-lvm fuzz scan bench bench-age bench-catalog bench-lvm clean

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

# libFuzzer needs clang; the sanitizers stop at the first report.
$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --werror -Dfuzzers=true -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

build-fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

# make install [PREFIX=/usr] [DESTDIR=/tmp/stage]: meson install of build/,
# configured for PREFIX first (sysconfdir /etc for /usr, as Debian has it).
PREFIX ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
install: build
	meson configure $(BUILD) --prefix=$(PREFIX) --sysconfdir=$(SYSCONFDIR)
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir=$(DESTDIR))

demo: build
	./scripts/demo.sh $(BUILD)

# The sanitizer build's suites run beside the normal build's, with the crash
# torture and the soak at lower counts and without the application load tests:
# they are there to drive vss's own paths under ASan, which a few kills do,
# and keep make check well under 25 minutes (scripts/check.sh).
check: build build-asan build-fuzz
	VSS_SANITIZER_BUILD=$(ASAN_BUILD) \
	VSS_VALGRIND_BUILD=$(BUILD) VSS_FUZZ_BUILD=$(FUZZ_BUILD) VSS_SCAN_BUILD=$(SCAN_BUILD) \
	VSS_LVM_BUILD=$(BUILD) \
		./scripts/check.sh $(BUILD)

# The LVM suite alone: tests/lvm in QEMU guests (docs/TESTING-LVM.md).
check-lvm: build
	VSS_LVM_BUILD=$(BUILD) ./scripts/check.sh

check-long: build build-fuzz
	VSS_LONG=1 VSS_VALGRIND_BUILD=$(BUILD) VSS_FUZZ_BUILD=$(FUZZ_BUILD) VSS_SCAN_BUILD=$(SCAN_BUILD) \
	VSS_LVM_BUILD=$(BUILD) \
		./scripts/check.sh $(BUILD)

# Each fuzz target for FUZZ_SECONDS; what it learns stays in $(FUZZ_BUILD)/fuzz-corpus.
fuzz: build-fuzz
	./scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

scan: deps
	./scripts/scan.sh $(SCAN_BUILD)

bench: build
	./bench/bench-create.sh $(BUILD)
	./bench/bench-hold.sh $(BUILD)
	./bench/bench-writers.sh $(BUILD)

# Not in `bench`: at least 7 minutes (200 sets of 8 volumes under random writers).
bench-age: build
	./bench/bench-age.sh $(BUILD)

# Apart from `bench`: generating 100,000 snapshots takes 20 minutes and more.
# VSS_BENCH_CATALOG_DIR keeps them for the next run (bench/README.md).
bench-catalog: build
	./bench/bench-catalog.sh $(BUILD)

# Apart from `bench`: it boots the LVM test guest (minutes under emulation).
bench-lvm: build
	VSS_BUILD_DIR=$(CURDIR)/$(BUILD) ./bench/bench-lvm.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(SCAN_BUILD)
