# shellcheck shell=bash
# Chromium from Debian's package, for the web client's browser tests (tests/node/test/web.test.js
# drives it with puppeteer-core; no browser is downloaded), with Noto fonts for Korean and emoji,
# which a bare Debian lacks (the test's screenshot would show empty boxes). Sourced after
# common.sh.

CHROMIUM_BIN="${CHAT_CHROMIUM:-/usr/bin/chromium}"

CHROMIUM_PACKAGES=(chromium fonts-noto-cjk fonts-noto-color-emoji)

# chromium_ready: the browser and both fonts are there.
chromium_ready() {
  [[ -x "$CHROMIUM_BIN" ]] &&
    [[ -n "$(fc-list ':lang=ko' family 2>/dev/null)" ]] &&
    fc-list 2>/dev/null | grep -q 'Noto Color Emoji'
}

# install_chromium: idempotent; apt-get install what is missing of chromium and the fonts.
install_chromium() {
  chromium_ready && return 0
  [[ $EUID -eq 0 ]] ||
    die "chromium or its fonts are missing, and installing them needs root (apt-get install ${CHROMIUM_PACKAGES[*]})"
  say "installing ${CHROMIUM_PACKAGES[*]} (apt, log $LOG_DIR/chromium-install.log)"
  {
    apt-get update &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${CHROMIUM_PACKAGES[@]}"
  } >"$LOG_DIR/chromium-install.log" 2>&1 ||
    { tail -n 20 "$LOG_DIR/chromium-install.log" >&2; die "apt-get install ${CHROMIUM_PACKAGES[*]} failed"; }
  [[ -x "$CHROMIUM_BIN" ]] || die "chromium installed, but $CHROMIUM_BIN is not there (set CHAT_CHROMIUM)"
  say "chromium installed: $("$CHROMIUM_BIN" --version 2>/dev/null)"
}
