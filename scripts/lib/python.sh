# shellcheck shell=bash
# The Python virtual environment of the tests: the API fuzzer (schemathesis) and the analytics
# example (examples/analytics). Sourced after common.sh, never executed.
#
# python_env: makes $VENV_DIR from tests/python/requirements.txt (every package pinned) with the
# machine's python3, and installs again only when a requirements file changed since (their
# sha256 is kept in the venv). Rust tests find the interpreter through CHAT_PYTHON.

VENV_DIR="$LOCAL_DIR/venv"
PYTHON_REQUIREMENTS=("$ROOT/tests/python/requirements.txt" "$ROOT/examples/analytics/requirements.txt")

python_env() {
  command -v python3 >/dev/null || die "python3 is missing (install Python 3.10 or newer)"
  local want have=""
  want="$(cat "${PYTHON_REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1)"
  [[ -f "$VENV_DIR/requirements.sha256" ]] && have="$(cat "$VENV_DIR/requirements.sha256")"
  if [[ -x "$VENV_DIR/bin/python" && "$want" == "$have" ]]; then
    say "python environment $VENV_DIR is up to date"
  else
    say "making the python environment $VENV_DIR (tests/python/requirements.txt)"
    rm -rf "$VENV_DIR"
    python3 -m venv "$VENV_DIR" ||
      die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$VENV_DIR/bin/pip" install --quiet --disable-pip-version-check \
      -r "$ROOT/tests/python/requirements.txt"
    printf '%s\n' "$want" >"$VENV_DIR/requirements.sha256"
  fi
  export CHAT_PYTHON="$VENV_DIR/bin/python"
}
