# The README's commands. `make test` builds and runs every test;
# `make bench` builds in Release and runs the benchmark suite.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# CTEST_ARGS: more ctest arguments (.ci/run: -LE tier2 in the sanitizer
# stage; in the debug stage, -E for compat_ecl and compat_guile_compile).
CTEST_ARGS ?=

.PHONY: all test bench bench-plots install clean

all:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

test: all
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) $(CTEST_ARGS)

bench:
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DRUDO_BUILD_TESTS=OFF
	cmake --build build-release -j$(JOBS)
	python3 bench/run.py --build build-release $(ARGS)

bench-plots:
	python3 bench/plot.py

# Installs a Release build (build-release/, the one `make bench` uses).
install:
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DRUDO_BUILD_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build build-release -j$(JOBS)
	cmake --install build-release $(if $(PREFIX),--prefix $(PREFIX))

clean:
	rm -rf $(BUILD) build-release
