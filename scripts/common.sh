# Shared by install.sh and uninstall.sh: step headings, notes, and `run`, which prints every
# command that changes the system and executes it unless DRY_RUN=1.
# shellcheck shell=bash

step() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
run() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if [ "${DRY_RUN:-0}" -eq 0 ]; then "$@"; fi
}
