#!/bin/sh
# Renders the configuration templates beside this script into $AST_CONF_DIR with envsubst (only the AST_*
# placeholders are replaced) and, given arguments, runs them: the container's entry point is
#   render.sh /usr/sbin/asterisk -f
# The tests render the same templates with Python's string.Template (tests/support/asterisk.py).
set -eu

: "${AST_ARI_PASSWORD:?set AST_ARI_PASSWORD (the hub's HUB_VOICE_ARI_PASSWORD)}"
: "${AST_SIP_TRUNK_MATCH:?set AST_SIP_TRUNK_MATCH (the carrier trunk addresses calls come from)}"
export AST_CONF_DIR="${AST_CONF_DIR:-/etc/asterisk}"
export AST_RUN_DIR="${AST_RUN_DIR:-/var/lib/shuiwu-asterisk}"
export AST_MODULE_DIR="${AST_MODULE_DIR:-$(ls -d /usr/lib/*/asterisk/modules /usr/lib/asterisk/modules 2>/dev/null | head -n 1)}"
export AST_HTTP_BIND="${AST_HTTP_BIND:-127.0.0.1}" AST_HTTP_PORT="${AST_HTTP_PORT:-8088}"
export AST_ARI_USER="${AST_ARI_USER:-hub}" AST_STASIS_APP="${AST_STASIS_APP:-hub}"
export AST_SIP_BIND="${AST_SIP_BIND:-0.0.0.0}" AST_SIP_PORT="${AST_SIP_PORT:-5060}"
export AST_RTP_START="${AST_RTP_START:-10000}" AST_RTP_END="${AST_RTP_END:-20000}"

here="$(cd "$(dirname "$0")" && pwd)"
names='$AST_CONF_DIR $AST_RUN_DIR $AST_MODULE_DIR $AST_HTTP_BIND $AST_HTTP_PORT $AST_ARI_USER $AST_ARI_PASSWORD
$AST_SIP_BIND $AST_SIP_PORT $AST_SIP_TRUNK_MATCH $AST_RTP_START $AST_RTP_END $AST_STASIS_APP'
mkdir -p "$AST_CONF_DIR" "$AST_RUN_DIR/lib" "$AST_RUN_DIR/spool/recording" "$AST_RUN_DIR/run" "$AST_RUN_DIR/log"
for template in "$here"/*.conf; do
  envsubst "$names" <"$template" >"$AST_CONF_DIR/$(basename "$template")"
done
chmod 0640 "$AST_CONF_DIR/ari.conf"
[ "$#" -eq 0 ] || exec "$@" -C "$AST_CONF_DIR/asterisk.conf"
