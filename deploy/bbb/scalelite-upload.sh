#!/bin/sh
# Uploads a published BigBlueButton recording to scalelite-rs over HTTPS
# (PUT /scalelite/upload/<record_id>.tar, RECORDING_UPLOAD_ENABLED=true on
# the balancer), in place of Scalelite's rsync into a shared spool. Run by
# scalelite_post_publish.rb (next to it in BBB's post_publish directory)
# after each publish, or by hand.
#
#   scalelite-upload.sh -m RECORD_ID   pack <published_dir>/*/RECORD_ID as
#                                      Scalelite's script does, upload, then
#                                      write the sender.done status file
#   scalelite-upload.sh ARCHIVE.tar    upload an archive packed before
#                                      (e.g. one a failed run kept)
#
# The archive is uncompressed `tar` with members <format>/<record_id>/...,
# exactly what scalelite_post_publish.rb makes. It is kept until the
# balancer answers 201 (received) or 200 (received before); transport
# errors, timeouts and 5xx/408/409/429 answers are retried with a backoff
# (UPLOAD_BACKOFF seconds, doubling up to 300, UPLOAD_ATTEMPTS times). 507
# (the balancer's spool has no room for the archive now) is one of them:
# the importer frees space as it imports. A refusal (another 4xx) ends the
# run: fix the cause and run it again with the kept archive.
#
# Each attempt is signed anew with this server's own BBB secret:
#   X-Scalelite-Checksum = sha256("scalelite-recording-upload\n" name "\n"
#     server "\n" size "\n" sha256(archive) "\n" unix-seconds "\n" secret)
# (docs/IMPORTER.md, "Uploads over HTTPS").
#
# Settings, from the environment, else from /etc/default/scalelite-upload
# (a file of NAME=value lines; SCALELITE_UPLOAD_CONFIG names another):
#   SCALELITE_URL     the balancer's base URL, e.g. https://sl.example.org (required)
#   BBB_SERVER        this server as the balancer knows it: its id, or its
#                     API URL as registered (default
#                     https://<hostname -f>/bigbluebutton/api)
#   BBB_SECRET        this server's secret (default: securitySalt from
#                     bbb-web's properties, as `bbb-conf --secret`)
#   PUBLISHED_DIR     default /var/bigbluebutton/published
#   WORK_DIR          where the archive is packed and kept
#                     (default /var/bigbluebutton/recording/scalelite)
#   STATUS_DIR        where <id>-sender.done is written
#                     (default /var/bigbluebutton/recording/status/published)
#   DELETE_RECORDING  true: `bbb-record --delete <id>` after the upload
#   UPLOAD_ATTEMPTS   default 8;  UPLOAD_BACKOFF  first pause, default 5 s
#   UPLOAD_TIMEOUT    seconds one attempt may take (default 0: no limit;
#                     stalls are ended by --speed-limit anyway)
#   CURL_OPTS         extra curl options, e.g. "--cacert /etc/ssl/sl-ca.pem"
#
# Needs sh, tar, curl, sha256sum. Exit status 0 when the balancer has the
# archive (or there was nothing to upload), 1 otherwise.
set -eu

log() {
  echo "scalelite-upload: $*" >&2
}

die() {
  log "$*"
  exit 1
}

config="${SCALELITE_UPLOAD_CONFIG:-/etc/default/scalelite-upload}"
if [ -r "$config" ]; then
  # Only NAME=value lines of known names; the environment wins.
  while IFS='=' read -r name value; do
    case "$name" in
      SCALELITE_URL | BBB_SERVER | BBB_SECRET | PUBLISHED_DIR | WORK_DIR | STATUS_DIR | DELETE_RECORDING | \
        UPLOAD_ATTEMPTS | UPLOAD_BACKOFF | UPLOAD_TIMEOUT | CURL_OPTS)
        eval "current=\${$name:-}"
        if [ -z "$current" ]; then
          value="${value#\"}"
          value="${value%\"}"
          export "$name=$value"
        fi
        ;;
    esac
  done <"$config"
fi

[ -n "${SCALELITE_URL:-}" ] || die "SCALELITE_URL is not set (e.g. https://scalelite.example.org)"
command -v curl >/dev/null 2>&1 || die "curl is missing"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing"

published_dir="${PUBLISHED_DIR:-/var/bigbluebutton/published}"
work_dir="${WORK_DIR:-/var/bigbluebutton/recording/scalelite}"
status_dir="${STATUS_DIR:-/var/bigbluebutton/recording/status/published}"
attempts="${UPLOAD_ATTEMPTS:-8}"
backoff="${UPLOAD_BACKOFF:-5}"
timeout="${UPLOAD_TIMEOUT:-0}"

server="${BBB_SERVER:-}"
if [ -z "$server" ]; then
  host="$(hostname -f)" || die "BBB_SERVER is not set and hostname -f failed"
  server="https://$host/bigbluebutton/api"
fi

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
secret="${BBB_SECRET:-}"
[ -n "$secret" ] || secret="$(bbb_secret)" || die "BBB_SECRET is not set and bbb-web's securitySalt was not found"

record_id=""
case "${1:-}" in
  -m | --meeting-id)
    record_id="${2:-}"
    [ -n "$record_id" ] || die "usage: scalelite-upload.sh -m RECORD_ID | ARCHIVE.tar"
    ;;
  *.tar)
    archive="$1"
    ;;
  *)
    die "usage: scalelite-upload.sh -m RECORD_ID | ARCHIVE.tar"
    ;;
esac

if [ -n "$record_id" ]; then
  case "$record_id" in
    *[!A-Za-z0-9_.-]* | .*) die "invalid record id: $record_id" ;;
  esac
  formats="$(cd "$published_dir" && for dir in */"$record_id"; do [ -d "$dir" ] && printf '%s\n' "$dir"; done || true)"
  if [ -z "$formats" ]; then
    log "no published formats of $record_id in $published_dir"
    exit 0
  fi
  mkdir -p "$work_dir"
  archive="$work_dir/$record_id.tar"
  log "packing $(printf '%s' "$formats" | tr '\n' ' ') into $archive"
  # Format directories have no spaces (BBB names them); one per line.
  # shellcheck disable=SC2086
  (cd "$published_dir" && tar --create --file "$archive" $formats) || die "cannot pack $archive"
fi

[ -f "$archive" ] || die "no such archive: $archive"
name="$(basename "$archive")"
size="$(wc -c <"$archive" | tr -d ' ')"
log "hashing $name ($size bytes)"
digest="$(sha256sum "$archive" | cut -d ' ' -f 1)"
url="${SCALELITE_URL%/}/scalelite/upload/$name"
reply="$(mktemp)"
trap 'rm -f "$reply"' EXIT

attempt=1
pause="$backoff"
while :; do
  timestamp="$(date +%s)"
  checksum="$(printf 'scalelite-recording-upload\n%s\n%s\n%s\n%s\n%s\n%s' \
    "$name" "$server" "$size" "$digest" "$timestamp" "$secret" | sha256sum | cut -d ' ' -f 1)"
  # Expect: 100-continue: a refused upload is answered before the body is
  # sent. A transfer slower than 1 kB/s for 60 s is given up and retried.
  # shellcheck disable=SC2086
  status="$(curl -sS --max-time "$timeout" --connect-timeout 30 --speed-limit 1000 --speed-time 60 \
    --expect100-timeout 10 -H 'Expect: 100-continue' ${CURL_OPTS:-} \
    -H "X-Scalelite-Server: $server" -H "X-Scalelite-Timestamp: $timestamp" \
    -H "X-Scalelite-Content-Sha256: $digest" -H "X-Scalelite-Checksum: $checksum" \
    --upload-file "$archive" -o "$reply" -w '%{http_code}' "$url")" || status="000"
  case "$status" in
    200 | 201)
      log "uploaded $name: HTTP $status $(head -c 300 "$reply")"
      break
      ;;
    507)
      # The balancer's spool is full for now (RECORDING_UPLOAD_MIN_FREE_MB):
      # keep the archive and try again after the pause.
      log "attempt $attempt of $attempts failed: HTTP 507, the balancer's spool is full for now $(head -c 300 "$reply" 2>/dev/null || true)"
      ;;
    000 | 408 | 409 | 429 | 5??)
      # 409: this signature was used already (two runs within one second);
      # the next attempt is signed anew.
      log "attempt $attempt of $attempts failed: HTTP $status $(head -c 300 "$reply" 2>/dev/null || true)"
      ;;
    *)
      die "$name refused: HTTP $status $(head -c 300 "$reply"); kept $archive"
      ;;
  esac
  [ "$attempt" -lt "$attempts" ] || die "giving up after $attempts attempts; kept $archive"
  sleep "$pause"
  attempt=$((attempt + 1))
  pause=$((pause * 2))
  [ "$pause" -le 300 ] || pause=300
done

rm -f "$archive"
if [ -n "$record_id" ]; then
  case "${DELETE_RECORDING:-false}" in
    true | yes | 1)
      log "deleting the local recording $record_id"
      bbb-record --delete "$record_id" || die "bbb-record --delete $record_id failed"
      ;;
  esac
  mkdir -p "$status_dir"
  printf 'Published %s' "$record_id" >"$status_dir/$record_id-sender.done"
fi
log "done"
