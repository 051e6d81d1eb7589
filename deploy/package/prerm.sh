#!/bin/sh
# Stops the services before their binary goes away (remove, not upgrade:
# postinst restarts them after an upgrade).
set -e
if [ -d /run/systemd/system ] && [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ]; then
	systemctl stop drawbridge.service drawbridge-agent.service >/dev/null || true
fi
