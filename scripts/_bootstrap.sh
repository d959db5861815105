# Sourced by scripts/*: makes sure uv exists and the workspace environment is in sync.
# Needs only a Python >= 3.11 on PATH; never downloads an interpreter.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "bootstrap: installing uv with pip" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  hash -r
fi
if [ -n "${CQRS_SKIP_SYNC:-}" ] && [ -d .venv ]; then
  return 0 2>/dev/null || exit 0
fi
uv sync --all-packages --quiet
