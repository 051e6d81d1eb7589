#!/bin/sh
# Lets systemd forget the removed units. The state in /var/lib/drawbridge
# (under /var/lib/private, owned by the service's dynamic user) is kept,
# as for any package's data; delete it by hand after a purge if unwanted.
set -e
if [ -d /run/systemd/system ] && [ -z "${DPKG_ROOT:-}" ]; then
	systemctl daemon-reload >/dev/null || true
fi
