"""Drives a BBB API endpoint (the balancer under test) with the PyPI library
bigbluebutton_api_python, as a Python front-end would.

Usage: drive.py BASE_URL SECRET MEETING_ID

Prints one JSON object: what each call returned, or the first failure as
{"failed": step, "error": ...}. The Rust test (tests/it/client_libraries.rs)
asserts the values; this script only records them.
"""

import json
import sys
import urllib.error
import urllib.request

from bigbluebutton_api_python import BigBlueButton
from bigbluebutton_api_python.exception import BBBException
from bigbluebutton_api_python.util import UrlBuilder

base_url, secret, meeting_id = sys.argv[1:4]
bbb = BigBlueButton(base_url, secret)
out = {}
step = "start"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def location_of(url):
    """Status and Location of one GET, without following redirects."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url) as reply:
            return reply.status, reply.headers.get("Location")
    except urllib.error.HTTPError as reply:
        return reply.code, reply.headers.get("Location")


def key_of(call):
    """The BBBException key a call raised, or None if it succeeded."""
    try:
        call()
    except BBBException as error:
        return error.key
    return None


try:
    step = "create"
    params = {
        "name": "Vorlesung – Grüße & 1+1=2",
        "attendeePW": "ap & ü",
        "moderatorPW": "mp+1",
        "record": True,
        "welcome": "Hallo <b>%20</b> ~*",
    }
    meta = {"origin": "python client", "note": "a&b=c"}
    created = bbb.create_meeting(meeting_id, params=dict(params), meta=meta)
    out["create"] = {
        "returncode": created.get_return_code(),
        "meetingID": created.get_meetingid(),
        "attendeePW": created.get_attendee_pw(),
        "moderatorPW": created.get_moderator_pw(),
        "voiceBridge": created.get_voice_bridge(),
    }

    # A front-end retrying the same create.
    step = "create again"
    again = bbb.create_meeting(meeting_id, params=dict(params), meta=meta)
    out["create_again"] = {"returncode": again.get_return_code(), "messageKey": again.get_message_key()}

    step = "join"
    join_url = bbb.get_join_meeting_url("Zoë Ünïcode & Co", meeting_id, "mp+1")
    status, location = location_of(join_url)
    out["join"] = {"status": status, "location": location}
    # The browser follows the redirect: the user is in the meeting.
    with urllib.request.urlopen(location) as page:
        out["join"]["page"] = page.status

    step = "isMeetingRunning"
    out["isMeetingRunning"] = bbb.is_meeting_running(meeting_id).is_meeting_running()

    step = "getMeetingInfo"
    info = bbb.get_meeting_info(meeting_id)
    meeting = info.get_meetinginfo()
    out["getMeetingInfo"] = {
        "returncode": info.get_return_code(),
        "meetingID": meeting.get_meetingid(),
        "meetingName": meeting.get_meetingname(),
        "attendeePW": meeting.get_attendeepw(),
        "moderatorPW": meeting.get_moderatorpw(),
        "voiceBridge": meeting.get_voicebridge(),
        "internalMeetingID": meeting.get_internal_meetingid(),
        "recording": meeting.is_recording(),
        "meta_origin": meeting._Meeting__meta.get_meta("origin"),
        "meta_note": meeting._Meeting__meta.get_meta("note"),
        "attendees": len(info.get_attendees()),
    }

    # The library has no sendChatMessage (BBB 3.0); it is signed with the
    # library's own URL builder, as an application using it would.
    step = "sendChatMessage"
    chat_url = UrlBuilder(base_url, secret).buildUrl(
        "sendChatMessage", {"meetingID": meeting_id, "message": "Grüße & 1+1=2 😀", "userName": "Py Bot"}
    )
    with urllib.request.urlopen(chat_url) as reply:
        body = reply.read().decode("utf-8")
    out["sendChatMessage"] = "<returncode>SUCCESS</returncode>" in body

    step = "getRecordings"
    recordings = bbb.get_recordings(meeting_id=meeting_id).get_recordings()
    out["getRecordings"] = [
        {
            "recordID": r.get_recordid(),
            "meetingID": r.get_meetingid(),
            "name": r.get_name(),
            "published": r.is_published(),
            "state": r.get_state(),
            "playback": r.get_playbacktype(),
            "url": r.get_playbackurl(),
            "origin": r.get_meta("bbb-origin"),
        }
        for r in recordings
    ]

    step = "getRecordings (every meeting)"
    out["getRecordings_all"] = sorted(r.get_recordid() for r in bbb.get_recordings().get_recordings())

    step = "getRecordings (no recordings)"
    out["getRecordings_none"] = len(bbb.get_recordings(meeting_id="no-such-meeting").get_recordings())

    step = "end"
    ended = bbb.end_meeting(meeting_id, "mp+1")
    out["end"] = ended.get_return_code()

    step = "after end"
    out["isMeetingRunning_after_end"] = bbb.is_meeting_running(meeting_id).is_meeting_running()
    out["getMeetingInfo_after_end"] = key_of(lambda: bbb.get_meeting_info(meeting_id))
    out["end_after_end"] = key_of(lambda: bbb.end_meeting(meeting_id, "mp+1"))
except Exception as error:  # every failure is reported with its step
    out["failed"] = step
    out["error"] = "%s: %s" % (type(error).__name__, getattr(error, "key", None) or error)

print(json.dumps(out, ensure_ascii=False, sort_keys=True))
