#!/bin/sh
# Give a device a broker account confined to heatmap/v1/<site>/<device>/#.
#   add-device.sh SITE DEVICE            (asks for the password)
#   HEATMAP_DEVICE_PASSWORD=... add-device.sh SITE DEVICE
# Then reload mosquitto (systemctl reload mosquitto) so it rereads both files.
# MOSQUITTO_DIR (default /etc/mosquitto) says where heatmap.passwd and heatmap.acl live.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 SITE DEVICE" >&2; exit 2; }
site=$1 device=$2
for name in "$site" "$device"; do
  # The names rule of docs/protocol.md: no wildcards or separators can reach the ACL.
  if ! printf '%s' "$name" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'; then
    echo "$0: '$name' is not a valid name (1-64 of A-Z a-z 0-9 _ . -)" >&2; exit 2
  fi
done
# heatmap/v1/<site>/alerts is the site's alert topic (central writes it): a device of that
# name would get it inside heatmap/v1/<site>/alerts/#.
[ "$device" != "alerts" ] || { echo "$0: 'alerts' is reserved for the site's alert topic" >&2; exit 2; }
dir=${MOSQUITTO_DIR:-/etc/mosquitto}
passwd=$dir/heatmap.passwd acl=$dir/heatmap.acl
[ -f "$acl" ] || { echo "$0: $acl not found (install deploy/mosquitto/heatmap.acl first)" >&2; exit 1; }
if grep -qx "user $device" "$acl"; then
  echo "$0: $device already has an ACL block in $acl" >&2; exit 1
fi
touch "$passwd"
chmod 600 "$passwd"
if [ -n "${HEATMAP_DEVICE_PASSWORD:-}" ]; then
  mosquitto_passwd -b "$passwd" "$device" "$HEATMAP_DEVICE_PASSWORD"
else
  mosquitto_passwd "$passwd" "$device"
fi
printf '\nuser %s\ntopic readwrite heatmap/v1/%s/%s/#\n' "$device" "$site" "$device" >> "$acl"
echo "added $device for site $site; now: systemctl reload mosquitto"
