# Sourced by scripts/run and scripts/install.sh: refuses, in one line, a machine edgecam cannot
# be installed on.
# shellcheck shell=bash

# 32-bit userlands (32-bit Raspberry Pi OS is armhf, even on a 64-bit kernel that reports
# aarch64): PyPI has no TFLite runtime for them. ai-edge-litert has no armv7l wheel at all, and
# tflite-runtime's last armv7l wheels (2.9.1) are for Python 3.7-3.9, older than Bookworm's 3.11
# and Trixie's 3.13.
# usage: edgecam_platform_check MACHINE LONG_BIT   (uname -m, getconf LONG_BIT); 2 if refused
edgecam_platform_check() {
    if [ "$2" = 32 ]; then
        echo "edgecam: 32-bit systems ($1, 32-bit userland) are not supported: there is no TFLite runtime for them on PyPI; install 64-bit Raspberry Pi OS (arm64)" >&2
        return 2
    fi
}
