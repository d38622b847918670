#!/bin/sh
# Registers this BigBlueButton server with Scalelite (scalelite-rs or Ruby
# Scalelite) through the management API and lets it take meetings; with
# `cordon`, drains it. Meant for a BBB server's boot and shutdown
# (deploy/systemd/bbb-register.service), or by hand.
#
#   bbb-register.sh [enable|cordon]
#
# enable (the default): adds the server (addServer) unless a server with
#   this URL exists, then enables it (updateServer state=enable; an existing
#   server also gets the current secret, and the tag, load multiplier,
#   region and capabilities when given). Running it again changes nothing
#   else, so it can run at every boot.
# cordon: no new meetings for this server; running ones go on, and the
#   poller disables it once it is empty.
#
# Settings, from the environment:
#   SCALELITE_URL        Scalelite's base URL, e.g. https://scalelite.example.com (required)
#   SCALELITE_SECRET     a management secret: MANAGEMENT_API_SECRETS when the
#                        balancer sets it, else its LOADBALANCER_SECRET (required)
#   BBB_URL              this server's API URL
#                        (default https://<hostname -f>/bigbluebutton/api)
#   BBB_SECRET           this server's shared secret (default: securitySalt
#                        from bbb-web's properties, as `bbb-conf --secret`)
#   BBB_TAG              tag for meta_server-tag placement (default: none /
#                        unchanged)
#   BBB_LOAD_MULTIPLIER  load multiplier (default: 1.0 / unchanged)
#   BBB_REGION           region (or site) for meta_server-region placement,
#                        e.g. eu-west (default: none / unchanged); scalelite-rs
#                        only, Ruby Scalelite ignores it
#   BBB_CAPABILITIES     capabilities this server offers besides those the
#                        poller learns, separated by commas, e.g. livekit
#                        (default: none / unchanged); scalelite-rs only
#   SCALELITE_SIGN_BODY  true (default): the checksum covers the JSON body
#                        too, which scalelite-rs accepts and, with
#                        MANAGEMENT_API_SIGNED_BODY=true, requires. false:
#                        the query only, as Ruby Scalelite expects.
#
# Needs curl and sha256sum. Exit status 0 when done, 1 on any failure.
set -eu

die() {
  echo "bbb-register: $*" >&2
  exit 1
}

action="${1:-enable}"
case "$action" in
  enable | cordon) ;;
  *) die "usage: bbb-register.sh [enable|cordon]" ;;
esac
[ -n "${SCALELITE_URL:-}" ] || die "SCALELITE_URL is not set (e.g. https://scalelite.example.com)"
[ -n "${SCALELITE_SECRET:-}" ] || die "SCALELITE_SECRET is not set"
command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing"

base="${SCALELITE_URL%/}/scalelite/api"
bbb_url="${BBB_URL:-}"
if [ -z "$bbb_url" ]; then
  host="$(hostname -f)" || die "BBB_URL is not set and hostname -f failed"
  bbb_url="https://$host/bigbluebutton/api"
fi
sign_body="${SCALELITE_SIGN_BODY:-true}"

# The shared secret bbb-web uses: its override file wins over the default.
bbb_secret() {
  for file in /etc/bigbluebutton/bbb-web.properties \
    /usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties; do
    [ -r "$file" ] || continue
    salt="$(sed -n 's/^securitySalt=//p' "$file" | tail -n 1 | tr -d '\r')"
    if [ -n "$salt" ]; then
      printf '%s' "$salt"
      return 0
    fi
  done
  return 1
}

# JSON string literal of $1.
json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"
}

# Lower-case SHA-256 hex of $1.
sha256() {
  printf '%s' "$1" | sha256sum | cut -d ' ' -f 1
}

# call CALL [JSON]: GET (without JSON) or POST the management call; prints
# the reply body. Fails unless the reply is JSON with a 2xx status (checksum
# and content-type errors come back as XML with status 200). Only GETs are
# retried: a POST that timed out may have been applied.
call() {
  name="$1"
  body="${2:-}"
  if [ -n "$body" ] && [ "$sign_body" != false ]; then
    checksum="$(sha256 "$name$body$SCALELITE_SECRET")"
  else
    checksum="$(sha256 "$name$SCALELITE_SECRET")"
  fi
  url="$base/$name?checksum=$checksum"
  if [ -n "$body" ]; then
    reply="$(curl -sS --max-time 30 \
      -H 'Content-Type: application/json' --data-binary "$body" \
      -w '\n%{http_code}' "$url")" || die "$name: $SCALELITE_URL unreachable"
  else
    reply="$(curl -sS --max-time 30 --retry 3 --retry-connrefused --retry-delay 5 \
      -w '\n%{http_code}' "$url")" || die "$name: $SCALELITE_URL unreachable"
  fi
  status="$(printf '%s\n' "$reply" | tail -n 1)"
  content="$(printf '%s\n' "$reply" | sed '$d')"
  case "$status:$content" in
    2??:"{"* | 2??:"["*)
      printf '%s\n' "$content"
      ;;
    404:*"No servers are configured"*)
      # getServers with an empty pool.
      printf '[]\n'
      ;;
    *)
      die "$name answered HTTP $status: $(printf '%s' "$content" | tr -d '\n' | cut -c 1-300)"
      ;;
  esac
}

# The id of the server whose url is $1 in a getServers reply on stdin (the
# first key of each server object is its id, then its url).
id_for_url() {
  tr -d '\n' | sed 's/},{/}\
{/g' \
    | grep -F "\"url\":$(json_string "$1")" \
    | sed -n 's/^[[{]*"id":"\([^"]*\)".*/\1/p' | head -n 1 || true
}

servers="$(call getServers)"
id="$(printf '%s\n' "$servers" | id_for_url "$bbb_url")"

if [ "$action" = cordon ]; then
  [ -n "$id" ] || die "no server with url $bbb_url"
  call updateServer "{\"id\":$(json_string "$id"),\"server\":{\"state\":\"cordon\"}}" >/dev/null
  echo "bbb-register: cordoned $id ($bbb_url)"
  exit 0
fi

secret="${BBB_SECRET:-}"
[ -n "$secret" ] || secret="$(bbb_secret)" || die "BBB_SECRET is not set and bbb-web's securitySalt was not found"

fields="\"secret\":$(json_string "$secret")"
[ -z "${BBB_TAG:-}" ] || fields="$fields,\"tag\":$(json_string "$BBB_TAG")"
[ -z "${BBB_LOAD_MULTIPLIER:-}" ] || fields="$fields,\"load_multiplier\":$(json_string "$BBB_LOAD_MULTIPLIER")"
[ -z "${BBB_REGION:-}" ] || fields="$fields,\"region\":$(json_string "$BBB_REGION")"
[ -z "${BBB_CAPABILITIES:-}" ] || fields="$fields,\"capabilities\":$(json_string "$BBB_CAPABILITIES")"

if [ -z "$id" ]; then
  added="$(call addServer "{\"server\":{\"url\":$(json_string "$bbb_url"),$fields}}")"
  id="$(printf '%s\n' "$added" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')"
  [ -n "$id" ] || die "addServer answered without an id: $added"
  echo "bbb-register: added $id ($bbb_url)"
  update="\"state\":\"enable\""
else
  update="$fields,\"state\":\"enable\""
fi
call updateServer "{\"id\":$(json_string "$id"),\"server\":{$update}}" >/dev/null
echo "bbb-register: enabled $id ($bbb_url); it takes meetings once the poller saw it online"
