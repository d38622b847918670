#!/usr/bin/env python3
"""Reference autoscaling hook for scalelite-rs (Python 3.8+, standard library only).

Run it from cron (or a systemd timer, or as the step of a scaler such as
bbb_scaler or an ECS service scaler) every few minutes. Each run reads the
balancer's capacity report (GET /scalelite/api/capacity) and, per group of
servers (per tag by default; per region or per capability with
AUTOSCALE_BY):

  1. deletes the servers that were drained and are now safe to remove (no
     meetings, no recordings processing or waiting on the server): it runs
     DELETE_COMMAND with the server's id and URL (your cloud's "terminate
     instance"), then removes the server from the pool (deleteServer);
  2. scales out when the group's headroom ratio is below SCALE_OUT_BELOW:
     first by taking back a server of the group being drained or drained
     but not deleted yet (updateServer state=enable), else by running
     SCALE_OUT_COMMAND with the group's name (your cloud's "start a BBB
     server" there; the new server registers itself with its tag, region
     and capabilities, see deploy/bbb-register.sh);
  3. scales in when the headroom ratio is above SCALE_IN_ABOVE, more than
     MIN_SERVERS servers of the group take meetings and none is draining:
     it drains the least loaded one (drainServer with DRAIN_DEADLINE and
     DRAIN_MESSAGE), so its users are warned in chat and its meetings end
     by the deadline. A later run deletes it (step 1).

Environment:
  SCALELITE_URL       the balancer, e.g. https://scalelite.example.com (required)
  SCALELITE_SECRET    a management secret (MANAGEMENT_API_SECRETS, else
                      LOADBALANCER_SECRET) (required)
  AUTOSCALE_BY        how servers are grouped: "tag" (default), "region"
                      (servers without a region form the group "none") or
                      "capability" (declared or automatic such as bbb-3.0;
                      a server counts in each capability it offers, and
                      servers without any are left alone); --by overrides it
  AUTOSCALE_TAGS      with AUTOSCALE_BY=tag: comma-separated tags to manage;
                      "none" means untagged servers (default: every tag)
  AUTOSCALE_REGIONS   with AUTOSCALE_BY=region: comma-separated regions to
                      manage; "none" means servers without a region
                      (default: every region in the report)
  AUTOSCALE_CAPABILITIES
                      with AUTOSCALE_BY=capability: comma-separated
                      capabilities to manage, e.g. "livekit" (default: every
                      capability in the report)
  SCALE_OUT_BELOW     headroom ratio under which to add capacity (default 0.2)
  SCALE_IN_ABOVE      headroom ratio over which to remove a server (default 0.6)
  MIN_SERVERS         servers taking meetings never drained below, per group
                      (default 1)
  DRAIN_DEADLINE      deadline of scale-in drains, e.g. 2h; empty waits for
                      the meetings to end (default 2h)
  DRAIN_MESSAGE       text added to the drain notices (default empty)
  SCALE_OUT_COMMAND   command run with the group's name (the tag, region or
                      capability; "" for untagged or no region) as argument,
                      and AUTOSCALE_BY (tag, region or capability) in its
                      environment
  DELETE_COMMAND      command run with the server id and URL as arguments

With --dry-run it only prints what it would do. Without DELETE_COMMAND
(or SCALE_OUT_COMMAND) those actions are printed, not done, and the run
exits 1.
--report FILE reads the report from a file ("-" for stdin, e.g. the output
of `scalelite-admin capacity --json`) instead of the API.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request


def sign(call, query, body, secret):
    """The checksum: SHA-256 of call name, query, raw body and secret."""
    return hashlib.sha256((call + query + body + secret).encode()).hexdigest()


def api(call, params=None, body=None):
    """Calls the management API; returns the decoded JSON reply."""
    base = os.environ["SCALELITE_URL"].rstrip("/")
    secret = os.environ["SCALELITE_SECRET"]
    query = urllib.parse.urlencode(params or {})
    raw = json.dumps(body) if body is not None else ""
    checksum = sign(call, query, raw, secret)
    url = f"{base}/scalelite/api/{call}?{query}{'&' if query else ''}checksum={checksum}"
    request = urllib.request.Request(url, data=raw.encode() if body is not None else None)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


def run(command, args, env=None):
    """Runs an operator's command (split on blanks) with `args`; whether it
    succeeded. Without a command, says so and counts as not done."""
    if not command:
        print("  (no command configured: nothing done)", flush=True)
        return False
    return subprocess.run([*command.split(), *args], check=False, env=env).returncode == 0


# AUTOSCALE_BY: the report's list of groups, the key naming a group in it,
# the variable choosing groups, and how an action names its group.
GROUPINGS = {
    "tag": ("tags", "tag", "AUTOSCALE_TAGS", lambda g: "untagged" if g is None else f"tag {g}"),
    "region": ("regions", "region", "AUTOSCALE_REGIONS", lambda g: "no region" if g is None else f"region {g}"),
    "capability": ("capabilities", "capability", "AUTOSCALE_CAPABILITIES", lambda g: f"capability {g}"),
}


def groups_of(server, by):
    """The groups a server of the report belongs to."""
    if by == "tag":
        return [server["tag"]]
    if by == "region":
        return [server.get("region")]
    names = []
    for name in server.get("capabilities", []) + server.get("automatic_capabilities", []):
        if name not in names:
            names.append(name)
    return names


def plan(report, settings):
    """The actions for a report: a list of (action, group, server id, url),
    the group being a tag, a region or a capability (settings["by"])."""
    actions = []
    by = settings.get("by", "tag")
    list_key, name_key = GROUPINGS[by][0], GROUPINGS[by][1]
    if list_key not in report:
        raise SystemExit(f"the capacity report has no {list_key!r}: the balancer predates AUTOSCALE_BY={by}")
    wanted = settings.get("groups")
    members = {}
    for server in report["servers"]:
        for group in groups_of(server, by):
            members.setdefault(group, []).append(server)
    # A server in several groups (capabilities) is acted on once a run.
    acted = set()
    drained_now = set()
    for entry in report[list_key]:
        name = entry[name_key]
        if wanted is not None and (name if name is not None else "none") not in wanted:
            continue
        servers = members.get(name, [])
        draining = [s for s in servers if s["drain"] is not None and s["drain"]["state"] == "draining"]
        # Drained servers still online can come back faster than new ones.
        drained = [s for s in servers if s["drain"] is not None and s["drain"]["state"] == "drained" and s["online"]]
        taking = [s for s in servers if s["state"] == "enabled" and s["online"] and s["id"] not in drained_now]
        ratio = entry["headroom_ratio"]
        back = None
        if ratio < settings["out_below"]:
            back = next((s for s in draining + drained if s["id"] not in acted), None)
            if back is not None:
                acted.add(back["id"])
                actions.append(("undrain", name, back["id"], back["url"]))
            else:
                actions.append(("scale-out", name, None, None))
        for server in servers:
            if server["safe_to_remove"] and server["drain"] is not None and server["id"] not in acted:
                acted.add(server["id"])
                actions.append(("delete", name, server["id"], server["url"]))
        if ratio < settings["out_below"]:
            continue
        busy_draining = draining or any(s["id"] in drained_now for s in servers)
        if ratio > settings["in_above"] and not busy_draining and len(taking) > settings["min_servers"]:
            idle = min(taking, key=lambda s: (s["load"] or 0.0, s["users"], s["id"]))
            if idle["id"] in acted:
                continue
            # Without it, its load moves to the others: would they still be
            # above the scale-out threshold (so the next run does not undo it)?
            per_server = report["capacity_per_server"]
            load = idle["load"] or 0.0
            capacity_after = entry["capacity"] - per_server
            headroom_after = entry["headroom"] - max(0.0, per_server - load) - load
            if capacity_after > 0 and headroom_after / capacity_after > settings["out_below"]:
                acted.add(idle["id"])
                drained_now.add(idle["id"])
                actions.append(("drain", name, idle["id"], idle["url"]))
    return actions


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the actions, do nothing")
    parser.add_argument("--report", help="read the capacity report from FILE ('-' for stdin)")
    parser.add_argument(
        "--by",
        choices=sorted(GROUPINGS),
        default=os.environ.get("AUTOSCALE_BY", "").strip() or "tag",
        help="group servers per tag (default), region or capability (env AUTOSCALE_BY)",
    )
    args = parser.parse_args()
    if args.by not in GROUPINGS:
        parser.error(f"AUTOSCALE_BY={args.by}: choose tag, region or capability")
    chosen = os.environ.get(GROUPINGS[args.by][2], "").strip()
    settings = {
        "by": args.by,
        "groups": [t.strip() for t in chosen.split(",")] if chosen else None,
        "out_below": float(os.environ.get("SCALE_OUT_BELOW", "0.2")),
        "in_above": float(os.environ.get("SCALE_IN_ABOVE", "0.6")),
        "min_servers": int(os.environ.get("MIN_SERVERS", "1")),
    }
    if args.report == "-":
        report = json.load(sys.stdin)
    elif args.report:
        with open(args.report, encoding="utf-8") as file:
            report = json.load(file)
    else:
        report = api("capacity")
    deadline = os.environ.get("DRAIN_DEADLINE", "2h")
    message = os.environ.get("DRAIN_MESSAGE", "")
    failed = False
    label_of = GROUPINGS[args.by][3]
    command_env = {**os.environ, "AUTOSCALE_BY": args.by}
    for action, group, server, url in plan(report, settings):
        print(f"{action} {server or ''} ({label_of(group)})".replace("  ", " "), flush=True)
        if args.dry_run:
            continue
        if action == "delete":
            # The machine first: a server left in the pool is harmless
            # (disabled), a pool entry without its machine is not.
            if run(os.environ.get("DELETE_COMMAND", ""), [server, url]):
                api("deleteServer", {"id": server}, {})
            else:
                failed = True
        elif action == "undrain":
            api("updateServer", {"id": server}, {"server": {"state": "enable"}})
        elif action == "scale-out":
            failed |= not run(os.environ.get("SCALE_OUT_COMMAND", ""), [group or ""], command_env)
        elif action == "drain":
            body = {"server": {"deadline": deadline, "message": message}}
            api("drainServer", {"id": server}, body)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
