# Careline: `make run` opens the desktop app, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench soak fuzz clean package package-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall whenever the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[gui,server,dev]'
	touch $(STAMP)

# careline itself explains a missing or unreachable display (app/display.py).
run: $(STAMP)
	$(BIN)/careline

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest exits 5 when it collects no test: treat that as a failure, not a pass. One worker
# more than the cores: the desktop end-to-end tests mostly wait on the screen (about a
# fifth of their wall time is CPU), and the extra worker keeps the cores busy meanwhile.
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests --ignore=tests/bench --durations=25 \
		-n $(WORKERS) --dist worksteal; \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests"; exit 1; fi; exit $$rc

# The convergence property test with 10,000 examples instead of 300.
soak: $(STAMP)
	CARELINE_PROPERTY_EXAMPLES=10000 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q \
		tests/unit/sync/test_convergence.py

# Coverage-guided fuzzing (tests/fuzz): each target for FUZZ_SECONDS; finds go to .fuzz/.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.campaign --seconds $(FUZZ_SECONDS)

# The frozen build (PyInstaller) and the Debian packages careline and careline-server, in
# dist/ (installers/linux/build_deb.py; a few minutes on two cores).
PACKAGE_STAMP := $(VENV)/.installed-package
$(PACKAGE_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[gui,server,dev,package]'
	touch $(PACKAGE_STAMP)

package: $(PACKAGE_STAMP)
	$(BIN)/python installers/linux/build_deb.py

# Builds the packages (reusing dist/ when current), installs them with dpkg on this
# machine (as root: CI), runs the installed app and CLI, upgrades from v0.1.0, removes.
package-test: $(PACKAGE_STAMP)
	CARELINE_PACKAGE_TEST=1 QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests/package \
		--durations=10

# Every part; one part: `make bench ONLY=peer` (make takes no `--only` of its own), other
# options: `make bench ONLY=scale BENCH_ARGS="--scale-records 300000"`.
ONLY ?=
BENCH_ARGS ?=
bench: $(STAMP)
	@$(BIN)/python -m tests.bench $(if $(ONLY),--only $(ONLY)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
