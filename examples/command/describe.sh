#!/bin/sh
# servo's describe hook: prints the pretend service's current settings as
#   {"components": {COMPONENT: {"settings": {SETTING: {"value": VALUE}}}}}
# Their domains (type, min, max, values) are declared in the config, so values are enough here.
set -eu
# The values the config declares, until adjust.sh writes the state file.
workers=8
cache=none
if [ -f "$STATE_FILE" ]; then . "$STATE_FILE"; fi
printf '{"components": {"app": {"settings": {"workers": {"value": %s}, "cache": {"value": "%s"}}}}}\n' \
  "$workers" "$cache"
