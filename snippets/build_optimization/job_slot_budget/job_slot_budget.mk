# Three ordinary recipes and a Python build driver under one `make -jN`.
# Each job records itself in a gauge file, so the test can read the peak.
PYTHON ?= python3
DRIVER := $(PYTHON) -m snippets.build_optimization.job_slot_budget.driver
GAUGE ?= gauge.json
JOB = $(PYTHON) -m snippets.support.build_optimization_gauge $(JOB_ARGS) $(GAUGE)
COUNT ?= 4

.PHONY: all a b c driver driver-own-pool driver-no-plus
all: a b c driver

a b c:
	@$(JOB) $@

# --8<-- [start:plus]
# '+' marks the line as recursive: make keeps the jobserver pipe open for it
# (and runs it even under `make -n`, so the driver checks for -n itself).
driver:
	+@$(DRIVER) run --count $(COUNT) -- $(JOB)
# --8<-- [end:plus]

# A tool that ignores the jobserver and brings its own -j4.
driver-own-pool:
	@$(DRIVER) run --count $(COUNT) --own-pool 4 -- $(JOB)

# No '+': make 4.3 closes the pipe before it runs this line.
driver-no-plus:
	@$(DRIVER) run --count $(COUNT) -- $(JOB)
