# Sourced by ./up and ./test: make .venv with the project installed, once per change of
# pyproject.toml. Needs only Python 3.11 (with venv) and the network to PyPI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      echo "bootstrap: '$python -m venv' failed; install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 2
    fi
  fi
fi
stamp="$venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)-${1:-run}"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  if [ "${1:-run}" = test ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[test]"
  else
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root"
  fi
  touch "$stamp"
fi
