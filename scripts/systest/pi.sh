#!/usr/bin/env bash
# scripts/system-test pi [trixie|bookworm]: 64-bit Raspberry Pi OS's base, an arm64 Debian
# rootfs run under qemu-user, tried the way a Pi user would:
#   as user pi: the README's first command (./scripts/run --source IMAGES --json), then
#               `edgecam probe` and `edgecam doctor`;
#   as root:    scripts/install.sh --from MODELS for real (its systemctl steps cannot work in a
#               chroot; everything else is checked).
# Checks, one PASS/FAIL line each: the detections on the five shared photos match x86 (computed
# now, on this host); the apt numpy extension (python3-bottleneck, built against the apt numpy
# like picamera2's simplejpeg) still imports in each venv; a second scripts/run needs no network
# and keeps stdout JSON only. Prints the versions pip resolved and the time of each phase.
#
# The pristine rootfs is cached per release under $EDGECAM_SYSTEST_CACHE (default
# /var/cache/edgecam-systest); each run works on a fresh copy and removes it
# (EDGECAM_SYSTEST_KEEP=1 keeps it for a look). Delete the cache to time a run from nothing.
set -euo pipefail

release=${1:-trixie}
case "$release" in
    trixie|bookworm) ;;
    *) echo "usage: scripts/system-test pi [trixie|bookworm]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(cd "${EDGECAM_SHARED:-$repo/../shared}" 2>/dev/null && pwd -P) \
    || { echo "pi: ../shared (the test models and photos) not found beside $repo" >&2; exit 2; }
cache=${EDGECAM_SYSTEST_CACHE:-/var/cache/edgecam-systest}
mirror=${EDGECAM_SYSTEST_MIRROR:-http://deb.debian.org/debian}
qemu=/usr/bin/qemu-aarch64-static

skip() { echo "SKIP: pi $release: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, chroot, mounts)"
if ! command -v debootstrap >/dev/null || [ ! -x "$qemu" ]; then
    # Every install step lives in the repo: a fresh machine (CI's too) gets the tools here.
    echo "pi: installing the host's tools: debootstrap qemu-user-static" >&2
    apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends debootstrap qemu-user-static >/dev/null 2>&1 || true
fi
command -v debootstrap >/dev/null || skip "needs debootstrap, and apt could not install it"
[ -x "$qemu" ] || skip "needs $qemu (qemu-user-static), and apt could not install it"

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
now() { date +%s; }
elapsed() { echo "$(( $(now) - $1 ))s"; }
t_start=$(now)

# --- binfmt_misc: aarch64 ELF files run through qemu. The F flag opens the interpreter now,
# so it works inside the chroot without a copy there.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
    mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || skip "cannot mount binfmt_misc (no CAP_SYS_ADMIN?)"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$qemu"':F' \
        > "$binfmt/register" || skip "cannot register qemu-aarch64 with binfmt_misc"
fi
grep -q '^enabled' "$binfmt/qemu-aarch64" || skip "binfmt_misc qemu-aarch64 is disabled"
fix_binfmt_interpreter() {
    # Registered by someone else without F: the interpreter is looked up inside the chroot.
    if ! grep -q '^flags:.*F' "$binfmt/qemu-aarch64"; then
        local interp
        interp=$(sed -n 's/^interpreter //p' "$binfmt/qemu-aarch64")
        install -D -m 0755 "$qemu" "$1$interp"
    fi
}

# A Raspberry Pi 4's /proc/cpuinfo (4 x Cortex-A72): qemu 7.2 passes the host's x86 one
# through, and LiteRT's CPU detection crashes on it.
pi4_cpuinfo() {
    local n
    for n in 0 1 2 3; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03114\nSerial\t\t: 100000000000cafe\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n'
}

root=""
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true; done
    if [ -n "$root" ] && [ "${EDGECAM_SYSTEST_KEEP:-0}" != 1 ]; then rm -rf --one-file-system "$root"; fi
}
trap cleanup EXIT
mount_in() { mount "$@" && mounted+=("${!#}"); }
setup_mounts() {
    local r=$1
    mount_in -t proc proc "$r/proc"
    pi4_cpuinfo > "$r/.pi4-cpuinfo"
    mount_in --bind "$r/.pi4-cpuinfo" "$r/proc/cpuinfo"
    mount_in --rbind /sys "$r/sys"
    mount --make-rslave "$r/sys"
    mount_in --rbind /dev "$r/dev"
    mount --make-rslave "$r/dev"
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
}
unmount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"; done
    mounted=()
}
# Root steps: setuid (sudo) does not work under qemu-user without the binfmt C flag, so root
# commands go straight through chroot with a clean environment.
in_root() {
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 QEMU_CPU=cortex-a72 chroot "$root" "$@"
}
# User pi's steps, through a login shell. `su -` clears the environment, so QEMU_CPU (the Pi 4's
# ARMv8.0 core, not qemu's newer default) is set again inside.
as_pi() {
    in_root su - pi -c "export QEMU_CPU=cortex-a72 EDGECAM_MODELS_FROM=/home/pi/shared/models; cd ~/edgecam && $1"
}

# --- the pristine rootfs, built once per release
pristine=$cache/$release-arm64
t_debootstrap=cached
if [ ! -e "$pristine/.edgecam-complete" ]; then
    echo "building the arm64 $release rootfs in $pristine (debootstrap under qemu: minutes)"
    t0=$(now)
    rm -rf --one-file-system "$pristine"
    mkdir -p "$pristine"
    fix_binfmt_interpreter "$pristine"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,python3-numpy,ca-certificates,git,sudo,systemd,python3-bottleneck \
        "$release" "$pristine" "$mirror" > "$cache/$release-arm64.debootstrap.log" 2>&1 \
        || { tail -20 "$cache/$release-arm64.debootstrap.log" >&2; fail "debootstrap $release arm64 (log: $cache/$release-arm64.debootstrap.log)"; exit 1; }
    # Raspberry Pi OS's user; the host's extra CA certificates, as a machine on this network
    # would trust them (pip goes through them).
    root=$pristine
    cp /usr/local/share/ca-certificates/*.crt "$pristine/usr/local/share/ca-certificates/" 2>/dev/null || true
    setup_mounts "$pristine"
    in_root useradd -m -s /bin/bash -G sudo pi
    in_root update-ca-certificates >> "$cache/$release-arm64.debootstrap.log" 2>&1
    unmount_all
    root=""
    touch "$pristine/.edgecam-complete"
    t_debootstrap=$(elapsed "$t0")
fi
echo "TIME debootstrap ($release arm64): $t_debootstrap"

# --- a fresh copy for this run, with the clone (tracked files, no .venv) and ../shared
mkdir -p "$cache/runs"
root=$(mktemp -d "$cache/runs/$release.XXXXXX")
cp -a --reflink=auto "$pristine/." "$root/"
fix_binfmt_interpreter "$root"
setup_mounts "$root"
mkdir -p "$root/home/pi/edgecam"
(cd "$repo" && git ls-files -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) \
    | tar -xf - -C "$root/home/pi/edgecam"
cp -a "$shared" "$root/home/pi/shared"
in_root chown -R pi:pi /home/pi/edgecam /home/pi/shared
# shellcheck disable=SC2016 # expanded inside the rootfs
in_root sh -c '. /etc/os-release; echo "rootfs: $PRETTY_NAME, $(uname -m), $(python3 --version), apt numpy $(python3 -c "import numpy; print(numpy.__version__)")"'

out=$root/home/pi
# --- the x86 reference, now, with this host's venv and the same model files
ref=$(mktemp -d)
host_venv=${EDGECAM_HOST_VENV:-$repo/.venv}
if [ ! -x "$host_venv/bin/edgecam" ]; then
    host_venv=$ref/venv
    python3 -m venv "$host_venv"
    "$host_venv/bin/python" -m pip install "$repo" > "$ref/pip.log" 2>&1 \
        || { tail -20 "$ref/pip.log" >&2; fail "x86 reference venv"; }
fi
EDGECAM_HOME=$ref "$host_venv/bin/edgecam" models fetch ssd_mobilenet_v1_coco --from "$shared/models" >/dev/null
EDGECAM_HOME=$ref "$host_venv/bin/edgecam" run --source "$shared/images" --json > "$ref/x86.jsonl" 2> "$ref/x86.err" \
    || { cat "$ref/x86.err" >&2; fail "x86 reference run"; }

# --- as pi: the README's first command, from nothing
t0=$(now)
if as_pi './scripts/run --source ~/shared/images --json > ~/run1.jsonl 2> ~/run1.err'; then
    pass "scripts/run --source IMAGES --json ($release arm64)"
else
    tail -20 "$out/run1.err"; fail "scripts/run --source IMAGES --json ($release arm64)"
fi
t_run=$(elapsed "$t0")
echo "TIME scripts/run, first call (venv, pip install, model, 5 photos): $t_run"
if python3 "$here/pi-compare.py" "$ref/x86.jsonl" "$out/run1.jsonl"; then
    pass "detections on the five photos match x86 (labels; scores, boxes within 0.02)"
else
    fail "detections on the five photos match x86 (labels; scores, boxes within 0.02)"
fi
if python3 "$here/pi-compare.py" --json-only "$out/run1.jsonl"; then
    pass "scripts/run --json: stdout holds only JSON"
else
    fail "scripts/run --json: stdout holds only JSON"
fi

venv_checks() {  # $1: venv inside the rootfs, $2: who made it
    if in_root "$1/bin/python" -c 'import bottleneck' 2> "$root/tmp/bn.err"; then
        pass "the apt numpy extension (bottleneck) imports in $1 after $2"
    else
        tail -3 "$root/tmp/bn.err"; fail "the apt numpy extension (bottleneck) imports in $1 after $2"
    fi
    in_root "$1/bin/python" - "$2" <<'EOF'
import sys
from importlib import metadata
import numpy
names = ("numpy", "ai-edge-litert", "opencv-python-headless")
print("versions (%s): " % sys.argv[1] + ", ".join(
    "%s %s" % (n, metadata.version(n)) for n in names)
    + "; numpy imported from " + numpy.__file__.rsplit("/numpy/", 1)[0])
EOF
}
venv_checks /home/pi/edgecam/.venv scripts/run

# A second call: nothing changed, so no pip and no network (run in an empty network namespace).
t0=$(now)
if unshare --net env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin QEMU_CPU=cortex-a72 chroot "$root" \
        su - pi -c 'export QEMU_CPU=cortex-a72; cd ~/edgecam && ./scripts/run --source ~/shared/images/pets.jpg --json > ~/run2.jsonl 2> ~/run2.err' \
        && python3 "$here/pi-compare.py" --json-only "$out/run2.jsonl" \
        && ! grep -q 'Warning' "$out/run2.err"; then
    pass "second scripts/run: no network needed, no warnings, JSON only ($(elapsed "$t0"))"
else
    tail -5 "$out/run2.err"; fail "second scripts/run: no network needed, no warnings, JSON only"
fi

if as_pi '.venv/bin/edgecam probe --model ~/shared/models/ssd_mobilenet_v1_coco_quant.tflite --labels ~/shared/models/coco_labels.txt --runs 3 --warmup 1 > ~/probe.txt 2>&1'; then
    pass "edgecam probe"; sed 's/^/    /' "$out/probe.txt"
else
    sed 's/^/    /' "$out/probe.txt"; fail "edgecam probe"
fi
# A chroot has no camera: that row fails; every other check must not.
as_pi '.venv/bin/edgecam doctor > ~/doctor.txt 2>&1' || true
sed 's/^/    /' "$out/doctor.txt"
if grep -Eq '^OK +tflite runtime' "$out/doctor.txt" && grep -Eq '^OK +model' "$out/doctor.txt" \
        && ! grep -E '^FAIL' "$out/doctor.txt" | grep -Evq '^FAIL +camera'; then
    pass "edgecam doctor (as pi): runtime and model OK, no failure but the missing camera"
else
    fail "edgecam doctor (as pi): runtime and model OK, no failure but the missing camera"
fi

# --- as root: install.sh for real. systemctl cannot reach a systemd in a chroot.
t0=$(now)
in_root /home/pi/edgecam/scripts/install.sh --from /home/pi/shared/models > "$root/tmp/install.log" 2>&1 \
    && install_rc=0 || install_rc=$?
t_install=$(elapsed "$t0")
echo "TIME install.sh: $t_install (exit $install_rc; its last lines:)"
tail -8 "$root/tmp/install.log" | sed 's/^/    /'
check_file() {  # $1: test(1) operator, $2: path inside the rootfs, $3: what it is
    if test "$1" "$root$2"; then pass "install.sh: $3 ($2)"; else fail "install.sh: $3 ($2)"; fi
}
check_file -x /opt/edgecam/venv/bin/edgecam "the service venv"
check_file -f /etc/edgecam/config.toml "the config"
check_file -f /var/lib/edgecam/models/ssd_mobilenet_v1_coco_quant.tflite "the default model"
check_file -f /etc/systemd/system/edgecam.service "the unit"
if in_root getent passwd edgecam >/dev/null; then pass "install.sh: service user edgecam"; else fail "install.sh: service user edgecam"; fi
# The service user, with the service's environment, on a photo it can read.
install -m 0644 "$shared/images/pets.jpg" "$root/tmp/pets.jpg"
if in_root runuser -u edgecam -- env EDGECAM_HOME=/var/lib/edgecam STATE_DIRECTORY=/var/lib/edgecam \
        /opt/edgecam/venv/bin/edgecam run --config /etc/edgecam/config.toml --source /tmp/pets.jpg --json \
        > "$root/tmp/svc.jsonl" 2> "$root/tmp/svc.err" < /dev/null \
        && grep -q '"dog"' "$root/tmp/svc.jsonl"; then
    pass "the service user runs the installed edgecam on a photo (dogs found)"
else
    tail -5 "$root/tmp/svc.err"; fail "the service user runs the installed edgecam on a photo"
fi
in_root runuser -u edgecam -- env EDGECAM_HOME=/var/lib/edgecam STATE_DIRECTORY=/var/lib/edgecam \
    /opt/edgecam/venv/bin/edgecam doctor --config /etc/edgecam/config.toml > "$root/tmp/doctor.txt" 2>&1 < /dev/null || true
if grep -Eq '^OK +tflite runtime' "$root/tmp/doctor.txt" && grep -Eq '^OK +model' "$root/tmp/doctor.txt" \
        && ! grep -E '^FAIL' "$root/tmp/doctor.txt" | grep -Evq '^FAIL +camera'; then
    pass "edgecam doctor (as the service user): runtime and model OK, no failure but the missing camera"
else
    sed 's/^/    /' "$root/tmp/doctor.txt"
    fail "edgecam doctor (as the service user): runtime and model OK, no failure but the missing camera"
fi
venv_checks /opt/edgecam/venv install.sh

echo "TIME whole run ($release arm64, debootstrap $t_debootstrap): $(elapsed "$t_start")"
rm -rf "$ref"
if [ "$failures" -gt 0 ]; then
    echo "pi $release: $failures check(s) failed"
    exit 1
fi
echo "pi $release: all checks passed"
