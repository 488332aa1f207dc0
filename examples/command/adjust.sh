#!/bin/sh
# servo's adjust hook: every setting's value arrives as SERVO_SETTING_<COMPONENT>_<SETTING>, and the
# changes alone as JSON on stdin ({"adjustments": [...], "control": {...}}). A real hook would
# reconfigure and restart the service here; exit 0 means the settings are applied.
set -eu
cat > /dev/null   # this hook uses the variables, not the JSON
mkdir -p "$(dirname "$STATE_FILE")"
printf 'workers=%s\ncache=%s\n' "$SERVO_SETTING_APP_WORKERS" "$SERVO_SETTING_APP_CACHE" > "$STATE_FILE.new"
mv "$STATE_FILE.new" "$STATE_FILE"
echo "applied workers=$SERVO_SETTING_APP_WORKERS cache=$SERVO_SETTING_APP_CACHE" >&2
