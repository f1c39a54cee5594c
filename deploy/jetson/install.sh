#!/bin/sh
# Install or upgrade the Heatmap edge agent on a Jetson (run as root from a checkout):
#   sudo deploy/jetson/install.sh
# Creates user heatmap-edge, copies edge/ and shared/ to /opt/heatmap-edge/app, builds a
# venv in /opt/heatmap-edge/venv (numpy, paho-mqtt), installs the unit, keeps an existing
# /etc/heatmap-edge/heatmap-edge.env, then enables and (re)starts the service.
# PYTHON (default python3, 3.8+) picks the interpreter; NO_START=1 installs without starting.
set -eu
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (sudo)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-python3}
prefix=/opt/heatmap-edge
etc=/etc/heatmap-edge
unit=/etc/systemd/system/heatmap-edge.service

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' ||
  { echo "$0: $python is older than 3.8" >&2; exit 1; }
"$python" -c 'import venv, ensurepip' 2>/dev/null ||
  { echo "$0: $python lacks venv (apt install python3-venv)" >&2; exit 1; }

if ! id heatmap-edge >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin heatmap-edge
fi

mkdir -p "$prefix/app.new"
cp -R "$root/edge" "$root/shared" "$prefix/app.new/"
mkdir -p "$prefix/app.new/docs"
cp "$root/docs/edge.md" "$root/docs/protocol.md" "$prefix/app.new/docs/" 2>/dev/null || true
cp "$root/requirements-edge.txt" "$prefix/app.new/"
find "$prefix/app.new" -name __pycache__ -prune -exec rm -rf {} +
rm -rf "$prefix/app.old"
[ ! -d "$prefix/app" ] || mv "$prefix/app" "$prefix/app.old"
mv "$prefix/app.new" "$prefix/app"

[ -x "$prefix/venv/bin/python" ] || "$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
"$prefix/venv/bin/python" -m pip install --quiet -r "$prefix/app/requirements-edge.txt"
chown -R root:root "$prefix"
chmod -R go-w "$prefix"

mkdir -p "$etc/credentials"
chmod 0750 "$etc"
chmod 0700 "$etc/credentials"
chgrp heatmap-edge "$etc"
if [ ! -f "$etc/heatmap-edge.env" ]; then
  install -m 0640 -g heatmap-edge "$here/heatmap-edge.env.example" "$etc/heatmap-edge.env"
  fresh=1
fi
install -m 0644 "$here/heatmap-edge.service" "$unit"

# One LoadCredential= per secret file present, so systemd hands them to the agent only.
dropin=/etc/systemd/system/heatmap-edge.service.d
mkdir -p "$dropin"
{
  echo "# Written by install.sh from the files in $etc/credentials; rerun it after changes."
  echo "[Service]"
  for f in "$etc"/credentials/*; do
    if [ -f "$f" ]; then echo "LoadCredential=$(basename "$f"):$f"; fi
  done
} > "$dropin/credentials.conf"

systemctl daemon-reload
systemctl enable heatmap-edge.service >/dev/null
if [ -n "${fresh:-}" ]; then
  echo "installed. Edit $etc/heatmap-edge.env (site, device, broker), put the broker"
  echo "password in $etc/credentials/mqtt_password, then rerun $0 to start."
  exit 0
fi
if [ -z "${NO_START:-}" ]; then
  systemctl restart heatmap-edge.service
  sleep 2
  systemctl --no-pager --lines=5 status heatmap-edge.service || true
fi
echo "installed: systemctl status heatmap-edge; journalctl -u heatmap-edge -f"
