#!/usr/bin/env bash
# Remove the edgecam service installed by scripts/install.sh.
#
#   sudo scripts/uninstall.sh            # stop and remove the service and /opt/edgecam
#   sudo scripts/uninstall.sh --purge    # also the config, models, spool and the user
#   scripts/uninstall.sh --dry-run       # print every step, change nothing (any user)
set -euo pipefail

PREFIX=/opt/edgecam
CONF_DIR=/etc/edgecam
STATE_DIR=/var/lib/edgecam
CACHE_DIR=/var/cache/edgecam
UNIT_DST=/etc/systemd/system/edgecam.service
SERVICE_USER=edgecam

DRY_RUN=0
PURGE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --purge) PURGE=1 ;;
        -h|--help) echo "usage: $0 [--dry-run] [--purge]"; exit 0 ;;
        *) echo "uninstall.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "uninstall.sh: run as root (sudo $0 $*), or try --dry-run" >&2
    exit 1
fi

step "stopping the service"
if [ -e "$UNIT_DST" ] || [ "$DRY_RUN" -eq 1 ]; then
    # Already stopped or disabled is fine: the goal is "not running".
    run systemctl disable --now edgecam.service || true
    # Only a failed unit stays loaded once stopped: reset-failed of any other one, or of one
    # whose file is gone, prints "Unit edgecam.service not loaded".
    if systemctl is-failed --quiet edgecam.service 2>/dev/null || [ "$DRY_RUN" -eq 1 ]; then
        run systemctl reset-failed edgecam.service
    fi
    run rm -f "$UNIT_DST"
    run systemctl daemon-reload
else
    note "$UNIT_DST not installed"
fi

step "removing $PREFIX"
run rm -rf "$PREFIX"

if [ "$PURGE" -eq 1 ]; then
    step "purging configuration, state and the $SERVICE_USER user"
    run rm -rf "$CONF_DIR" "$STATE_DIR" "$CACHE_DIR"
    if getent passwd "$SERVICE_USER" >/dev/null || [ "$DRY_RUN" -eq 1 ]; then
        run userdel "$SERVICE_USER"
    fi
else
    note "kept: $CONF_DIR (config), $STATE_DIR (models, spool), $CACHE_DIR (cache)"
    note "and the $SERVICE_USER user; remove them with --purge"
fi
step "done"
