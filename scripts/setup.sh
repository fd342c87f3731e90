#!/usr/bin/env bash
# One-command setup: system libraries (apt, when missing), .venv/ with every pinned
# package the pipeline needs, and the project itself (editable). Idempotent: a second
# run only checks a stamp and exits in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.stance-setup-stamp

# Shared libraries Blender's bpy wheel loads (present on most desktops, not in slim images).
APT_PACKAGES=(libx11-6 libxrender1 libxxf86vm1 libxfixes3 libxi6 libxkbcommon0 libsm6
              libice6 libgl1 libglx0 libgomp1)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing system libraries: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "[setup] missing system libraries for Blender: ${missing[*]}" >&2
    echo "[setup] install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# Chromium + its WebDriver for the demo's browser test (tests/test_demo.py); optional: the
# test skips with a message where they cannot be installed.
if ! command -v chromedriver >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "[setup] installing chromium and chromium-driver (the demo's browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
      || echo "[setup] could not install chromium: the browser test will be skipped" >&2
  else
    echo "[setup] no chromedriver: the demo's browser test will be skipped" \
      "(sudo apt-get install chromium chromium-driver)" >&2
  fi
fi

command -v "$PYTHON" >/dev/null || { echo "[setup] $PYTHON not found: bpy 4.2 needs Python 3.11" >&2; exit 1; }
[[ -x $VENV/bin/python ]] || { echo "[setup] creating $VENV"; "$PYTHON" -m venv "$VENV"; }

want=$(cat requirements/*.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
  echo "[setup] $VENV is up to date (stamp $want)"
  exit 0
fi

PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)
# torch first and pinned: an unpinned torch from a dependency would pull a newer CUDA build.
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -r requirements/pipeline.txt -r requirements/dev.txt torch==2.13.0
"${PIP[@]}" --no-build-isolation -r requirements/deepspeed.txt torch==2.13.0
"${PIP[@]}" --no-deps -r requirements/kubric.txt
"${PIP[@]}" --no-deps -e .
"$VENV/bin/python" -c "import stance, stance.render, stance.evaluate"
echo "$want" >"$STAMP"
echo "[setup] done: activate with 'source $VENV/bin/activate'"
