#!/bin/sh
# Entry point for a BigBlueButton server run as a container (an ECS task, an
# autoscaled instance, a Compose service): starts COMMAND, the server's
# main process, registers the server with Scalelite (bbb-register.sh
# enable, retried while Scalelite cannot be reached yet), and when the
# container is stopped (SIGTERM or SIGINT: docker stop, an ECS task
# stopping, a scale-in) or COMMAND ends, cordons it (bbb-register.sh
# cordon) before COMMAND is stopped, so Scalelite places no new meeting on
# a server that is going away.
#
#   bbb-container-entrypoint.sh COMMAND [ARGS...]
#
# Settings: those of bbb-register.sh (SCALELITE_URL, SCALELITE_SECRET,
# BBB_URL, BBB_SECRET, ...), and
#   BBB_REGISTER_ATTEMPTS  registration attempts, 2 s apart (default 30);
#                          after the last one COMMAND is stopped and the
#                          container fails (exit 1)
#   BBB_REGISTER           the registration script (default: bbb-register.sh
#                          on PATH)
# Give the container a stop timeout that leaves time for the cordon call
# (ECS stopTimeout, Compose stop_grace_period: 30 s or more).
#
# Exit status: COMMAND's.
set -u

if [ "$#" -eq 0 ]; then
  echo "usage: bbb-container-entrypoint.sh COMMAND [ARGS...]" >&2
  exit 2
fi
register="${BBB_REGISTER:-bbb-register.sh}"

"$@" &
child=$!

# Cordons the server, stops COMMAND and exits with its status.
finish() {
  trap - TERM INT
  "$register" cordon || echo "bbb-container-entrypoint: could not cordon the server" >&2
  kill -TERM "$child" 2>/dev/null
  wait "$child"
  exit $?
}
trap finish TERM INT

attempt=1
until "$register" enable; do
  if [ "$attempt" -ge "${BBB_REGISTER_ATTEMPTS:-30}" ]; then
    echo "bbb-container-entrypoint: not registered after $attempt attempts; stopping" >&2
    trap - TERM INT
    kill -TERM "$child" 2>/dev/null
    wait "$child"
    exit 1
  fi
  attempt=$((attempt + 1))
  sleep 2 &
  wait $!
done

# Until COMMAND ends or a signal runs `finish`.
wait "$child"
finish
