#!/bin/sh
# Remove the Heatmap edge agent: stops and disables the service, removes the unit and
# /opt/heatmap-edge. Keeps the outbox (/var/lib/heatmap-edge), the settings and the
# credentials (/etc/heatmap-edge) unless PURGE=1, and the user unless PURGE=1.
#   sudo deploy/jetson/uninstall.sh            sudo PURGE=1 deploy/jetson/uninstall.sh
set -eu
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (sudo)" >&2; exit 1; }
systemctl disable --now heatmap-edge.service 2>/dev/null || true
rm -f /etc/systemd/system/heatmap-edge.service
rm -rf /etc/systemd/system/heatmap-edge.service.d
systemctl daemon-reload
rm -rf /opt/heatmap-edge
if [ -n "${PURGE:-}" ]; then
  # The outbox may hold states central never acked: reconcile from raw restores them.
  rm -rf /var/lib/heatmap-edge /etc/heatmap-edge
  if id heatmap-edge >/dev/null 2>&1; then userdel heatmap-edge; fi
  echo "removed, with the outbox, the settings and the user"
else
  echo "removed; kept /var/lib/heatmap-edge and /etc/heatmap-edge (PURGE=1 removes them)"
fi
