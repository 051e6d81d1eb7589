#!/bin/sh
# Makes systemd see the new or upgraded units. The service is neither
# enabled nor started here: the shipped config is a placeholder to edit
# first (docs/install.md). On an upgrade a running service is restarted so
# the new binary serves.
set -e
if [ -d /run/systemd/system ] && [ -z "${DPKG_ROOT:-}" ]; then
	systemctl daemon-reload >/dev/null || true
	if [ "$1" = configure ] && [ -n "$2" ]; then
		systemctl try-restart drawbridge.service drawbridge-agent.service >/dev/null || true
	fi
fi
