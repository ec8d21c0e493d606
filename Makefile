# Two entry points that do all set-up on a fresh machine:
#   make demo   partition, train and score the embedded digits data set (fold 0, every digit)
#   make test   run the test suite
# Both create the virtual environment .venv from requirements.txt on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python partition_digits.py
	$(BIN)/python Testing_train_digits.py
	$(BIN)/python Testing_test_digits.py

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean-demo:
	rm -rf data/digits results/digits
