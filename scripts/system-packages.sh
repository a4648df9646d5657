#!/bin/sh
# Debian packages the test suite and the real-display (Xvfb) run need, installed only when missing:
#   sh scripts/system-packages.sh
# As root with apt-get: one `apt-get update`, then `apt-get install` of what is missing. Otherwise it
# prints what is missing and exits 0 (the Xvfb screenshot test and the SR validator tests then skip,
# except under CI=true).
set -eu

# Qt from the PySide6 wheels: GL/EGL, fonts, D-Bus, GLib, keymaps. Then Xvfb and the xcb libraries
# Qt 6's xcb platform plugin links (it no longer uses libxcb-xinerama0). Then the DICOM validators the SR
# tests run: dciodvfy (dicom3tools) and dsr2xml (dcmtk); pdftoppm and pdftotext (poppler-utils) for the
# PDF report tests; Orthanc with its DICOMweb plugin, the real PACS the PACS tests start on loopback
# ports (dcmtk's storescu and getscu push to our listener and are the PACS benchmark's reference).
PACKAGES="libegl1 libgl1 libfontconfig1 fonts-dejavu-core libdbus-1-3 libglib2.0-0 libxkbcommon0
  xvfb libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1
  dicom3tools dcmtk poppler-utils orthanc orthanc-dicomweb"

if ! command -v dpkg >/dev/null 2>&1; then
  command -v Xvfb >/dev/null 2>&1 || echo "system-packages: not Debian; without Xvfb the Xvfb test skips."
  exit 0
fi
missing=""
for pkg in $PACKAGES; do
  dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: installing$missing"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
else
  echo "system-packages: missing$missing"
  echo "  install them as root: apt-get install -y --no-install-recommends$missing"
fi
