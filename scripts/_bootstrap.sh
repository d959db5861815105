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
# The interpreter of .venv: CQRS_PYTHON if set; otherwise the default python3, unless its sqlite3
# cannot load extensions (python.org and pyenv builds often cannot: SpatiaLite, and the tests of
# it, need them) and the system's python3 >= 3.11 can. uv never downloads one.
_can_load_sqlite_extensions() {
  "$1" -c 'import sqlite3, sys
sys.exit(0 if sys.version_info >= (3, 11) and hasattr(sqlite3.Connection, "enable_load_extension") else 1)' \
    >/dev/null 2>&1
}
if [ -n "${CQRS_PYTHON:-}" ]; then
  export UV_PYTHON="$CQRS_PYTHON"
elif [ -z "${UV_PYTHON:-}" ] && ! _can_load_sqlite_extensions "$(command -v python3)"; then
  for _candidate in /usr/bin/python3 /usr/local/bin/python3; do
    if [ -x "$_candidate" ] && _can_load_sqlite_extensions "$_candidate"; then
      export UV_PYTHON="$_candidate"
      break
    fi
  done
fi
if [ -n "${CQRS_SKIP_SYNC:-}" ] && [ -d .venv ]; then
  return 0 2>/dev/null || exit 0
fi
uv sync --all-packages --quiet
