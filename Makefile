# The two commands of the README's quick start. Each creates .venv on first use (a few minutes:
# torch is large) and is fast once it exists.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bench-installed

.PHONY: demo test clean-venv

# TORCH_INDEX: a wheel index to take torch and torchvision from first, e.g. PyTorch's CPU-only
# builds (make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu): no CUDA libraries on disk
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --disable-pip-version-check --index-url $(TORCH_INDEX) torch==2.14.1 torchvision==0.29.1)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	# imagecorruptions-imaug pulls the GUI build of OpenCV (needs libGL); both install the same cv2
	# module, so keep only the headless one, which runs on servers without a display stack
	$(PY) -m pip uninstall --quiet -y opencv-python
	$(PY) -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps opencv-python-headless
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench demo

test: $(STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist worksteal --durations=10

clean-venv:
	rm -rf $(VENV)
