#!/usr/bin/env bash
# Install edgecam as a systemd service on 64-bit Raspberry Pi OS (Bookworm, Trixie).
#
#   sudo scripts/install.sh                  # everything, default model downloaded
#   sudo scripts/install.sh --from DIR       # take the model files from DIR (offline install)
#   scripts/install.sh --dry-run             # print every step, change nothing (any user)
#
# Safe to run again: existing users, venvs and config are kept; the package, the unit and
# the model are brought up to date. Remove with scripts/uninstall.sh.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/edgecam
VENV=$PREFIX/venv
CONF_DIR=/etc/edgecam
CONF=$CONF_DIR/config.toml
STATE_DIR=/var/lib/edgecam
UNIT_SRC=$REPO/systemd/edgecam.service
UNIT_DST=/etc/systemd/system/edgecam.service
SERVICE_USER=edgecam
DEFAULT_MODEL=ssd_mobilenet_v1_coco

DRY_RUN=0
FROM_DIR=""
ACCEL_ASKED=()
START=1
FETCH_MODEL=1

usage() {
    cat <<EOF
usage: $0 [--dry-run] [--from DIR] [--no-start] [--no-model]

  --dry-run    print every step without doing anything (works as any user)
  --from DIR   install the default model from DIR instead of downloading it
  --no-start   enable the service but do not (re)start it now
  --no-model   do not fetch the default model (set [model] path in $CONF)
  --with-imx500, --with-hailo, --with-hailo-h10
               install the accelerator's apt packages even when it is not detected
               (imx500-all, hailo-all, hailo-h10-all; detected hardware gets them anyway)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --from)
            [ $# -ge 2 ] || { echo "install.sh: --from needs a directory" >&2; exit 2; }
            FROM_DIR=$2; shift ;;
        --from=*) FROM_DIR=${1#--from=} ;;
        --no-start) START=0 ;;
        --no-model) FETCH_MODEL=0 ;;
        --with-imx500|--with-hailo|--with-hailo-h10) ACCEL_ASKED+=("${1#--with-}") ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source-path=SCRIPTDIR source=platform.sh
. "$(dirname "${BASH_SOURCE[0]}")/platform.sh"
edgecam_platform_check "$(uname -m)" "$(getconf LONG_BIT)" || exit 2

if [ -n "$FROM_DIR" ]; then
    [ -d "$FROM_DIR" ] || { echo "install.sh: --from $FROM_DIR: not a directory" >&2; exit 2; }
    FROM_DIR=$(cd "$FROM_DIR" && pwd)
fi
if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (sudo $0 $*), or try --dry-run" >&2
    exit 1
fi
[ -f "$UNIT_SRC" ] || { echo "install.sh: $UNIT_SRC missing: run from an edgecam checkout" >&2; exit 2; }

step "checking the system"
codename=""
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091 # the file exists on every systemd distribution
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
case "$codename" in
    bookworm|trixie) note "OS: $codename" ;;
    *) note "warning: tested on Raspberry Pi OS Bookworm and Trixie, this is '${codename:-unknown}'" ;;
esac
arch=$(uname -m)
[ "$arch" = aarch64 ] || note "warning: 64-bit Raspberry Pi OS (aarch64) expected, this is $arch"

step "installing system packages"
packages=(python3 python3-venv python3-pip ca-certificates)
# The Pi camera stack comes from the Raspberry Pi apt repository only.
if apt-cache show python3-picamera2 >/dev/null 2>&1; then
    packages+=(python3-picamera2)
else
    note "python3-picamera2 is not available here (not Raspberry Pi OS): USB/RTSP cameras only"
fi
run apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
note "optional, for debugging MQTT: sudo apt-get install mosquitto-clients"

# --- accelerator packages (docs/accelerators.md) -----------------------------------------
# Only for hardware that is present, or asked for with --with-*: imx500-all (AI Camera:
# firmware, networks, picamera2 support), hailo-all (AI Kit / AI HAT+, Hailo-8/8L) or
# hailo-h10-all (AI HAT+ 2, Hailo-10H). They come from the Raspberry Pi apt repository.
# EDGECAM_SYSROOT points the detection at a prepared tree (tests).
step "accelerator packages"
sysroot=${EDGECAM_SYSROOT:-}
accel=("${ACCEL_ASKED[@]}")
for module in "$sysroot"/sys/class/video4linux/v4l-subdev*/device/driver/module; do
    if [ -L "$module" ] && [[ $(readlink "$module") == *imx500* ]]; then
        note "AI Camera (IMX500) detected"
        accel+=(imx500)
        break
    fi
done
for dev in "$sysroot"/sys/bus/pci/devices/*; do
    [ -r "$dev/vendor" ] || continue
    [ "$(cat "$dev/vendor")" = 0x1e60 ] || continue
    if [ "$(cat "$dev/device" 2>/dev/null)" = 0x2864 ]; then
        note "Hailo-8/8L detected (PCI $(basename "$dev"))"
        accel+=(hailo)
    else
        note "Hailo device $(cat "$dev/device" 2>/dev/null) detected: choose --with-hailo or --with-hailo-h10"
    fi
done
accel_packages=()
for name in "${accel[@]}"; do
    case "$name" in
        imx500) accel_packages+=(imx500-all) ;;
        hailo) accel_packages+=(hailo-all) ;;
        hailo-h10) accel_packages+=(hailo-h10-all) ;;
    esac
done
if [ "${#accel_packages[@]}" -eq 0 ]; then
    note "none detected: CPU only (an accelerator later: rerun with --with-imx500 / --with-hailo / --with-hailo-h10)"
else
    mapfile -t accel_packages < <(printf '%s\n' "${accel_packages[@]}" | sort -u)
    for package in "${accel_packages[@]}"; do
        if [ "$DRY_RUN" -eq 0 ] && ! apt-cache show "$package" >/dev/null 2>&1; then
            echo "install.sh: $package is not in the apt sources (it comes from the Raspberry Pi repository)" >&2
            exit 2
        fi
    done
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${accel_packages[@]}"
    note "reboot once after installing ${accel_packages[*]} (firmware and drivers load at boot)"
fi

step "creating the virtual environment $VENV"
if [ -x "$VENV/bin/python" ]; then
    note "exists: kept"
else
    run install -d -m 0755 "$PREFIX"
    # System site packages: picamera2 and libcamera come from apt, not from PyPI.
    run python3 -m venv --system-site-packages "$VENV"
fi
run "$VENV/bin/python" -m pip install -q --upgrade pip
# Bookworm's apt numpy is 1.x and picamera2's compiled helpers (simplejpeg) are built against
# it: a numpy 2 wheel inside the venv would shadow it and break the camera. Keep numpy at the
# system's major version when that is 1. The newest opencv-python-headless and ml-dtypes
# wheels need numpy 2: capped too, or pip downloads and rejects about 200 MB of them first.
constraints=()
sys_numpy=$(python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)
if [ -n "$sys_numpy" ] && [ "${sys_numpy%%.*}" -lt 2 ]; then
    note "system numpy $sys_numpy: pinning numpy<2 in the venv"
    pins=("numpy<2" "opencv-python-headless<4.12" "ml-dtypes<0.6")
    if [ "$DRY_RUN" -eq 0 ]; then
        printf '%s\n' "${pins[@]}" > "$PREFIX/constraints.txt"
    else
        printf '+ write %s: %s\n' "$PREFIX/constraints.txt" "${pins[*]}"
    fi
    constraints=(-c "$PREFIX/constraints.txt")
fi
run "$VENV/bin/python" -m pip install -q --upgrade "${constraints[@]}" "$REPO"
# The model manifest is not Python package data: install it where edgecam looks for it.
run install -D -m 0644 "$REPO/models/manifest.toml" "$VENV/share/edgecam/manifest.toml"

step "service user $SERVICE_USER"
if getent passwd "$SERVICE_USER" >/dev/null; then
    note "exists: kept"
else
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "edgecam camera service" "$SERVICE_USER"
fi
# video: cameras, /dev/dma_heap, vcgencmd. plugdev: Coral USB. apex: Coral PCIe (made by
# Coral's udev rule instructions, so only when it exists).
for group in video plugdev apex; do
    if getent group "$group" >/dev/null; then
        run usermod -a -G "$group" "$SERVICE_USER"
    fi
done

step "directories and configuration"
run install -d -m 0755 "$CONF_DIR"
run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR" "$STATE_DIR/models"
if [ -e "$CONF" ]; then
    note "$CONF exists: kept (example: $REPO/systemd/config.example.toml)"
else
    run install -m 0640 -o root -g "$SERVICE_USER" "$REPO/systemd/config.example.toml" "$CONF"
fi
# It may hold secrets (MQTT password, web token): root writes it, the service reads it through
# its group, nobody else. Said again for every file, as one that was there before (often
# root:root 0644) would otherwise be unreadable to the service or readable to everyone.
run chown "root:$SERVICE_USER" "$CONF"
run chmod 0640 "$CONF"
run "$VENV/bin/edgecam" config check "$CONF"

if [ "$FETCH_MODEL" -eq 1 ]; then
    step "default model $DEFAULT_MODEL (sha256 verified)"
    fetch_args=(models fetch "$DEFAULT_MODEL")
    if [ -n "$FROM_DIR" ]; then
        fetch_args+=(--from "$FROM_DIR")
    fi
    run env EDGECAM_HOME="$STATE_DIR" "$VENV/bin/edgecam" "${fetch_args[@]}"
    run chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR/models"
fi

step "systemd unit"
run install -m 0644 "$UNIT_SRC" "$UNIT_DST"
run systemctl daemon-reload
run systemctl enable edgecam.service
started=1
if [ "$START" -eq 1 ]; then
    # A failed start (no camera yet, a bad config) must not end the script here: the doctor
    # below says why, which is what the user needs next.
    run systemctl restart edgecam.service || started=0
else
    note "not started (--no-start): sudo systemctl start edgecam"
fi

step "checking the installation"
# As the service user with the service's environment, so permissions are tested too.
doctor_ok=1
run runuser -u "$SERVICE_USER" -- env EDGECAM_HOME="$STATE_DIR" STATE_DIRECTORY="$STATE_DIR" \
    "$VENV/bin/edgecam" doctor --config "$CONF" || doctor_ok=0

if [ "$started" -eq 0 ]; then
    step "the service did not start"
    note "the doctor's report above says why; the service's own words:"
    note "  journalctl -u edgecam -p warning -n 20"
    note "fix it, then: sudo systemctl restart edgecam"
    exit 1
fi
[ "$doctor_ok" -eq 1 ] || note "doctor reported failures: fix them, then sudo systemctl restart edgecam"

step "done"
note "config:  $CONF (then: sudo systemctl restart edgecam)"
note "logs:    journalctl -u edgecam -f"
note "status:  systemctl status edgecam; $VENV/bin/edgecam doctor"
