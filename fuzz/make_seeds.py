#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

The seeds are committed; run this again only to change them
(`python3 fuzz/make_seeds.py`, Python 3.9+, standard library only). It
removes the seeds it owns first, so its output is the whole corpus.
Everything is deterministic: fixed ids, times and contents.
"""

import hashlib
import io
import os
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
# Must match SECRET in fuzz_targets/query.rs.
SECRET = "8cd8ef52e8e101574e400365b55e11a6"
RECORD_ID = "9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123"
HOST = "bbb1.example.edu"


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


# --- query: flag byte, then <query>\n<content type>\n<body> ----------------

POST, CONTENT_TYPE = 1, 2
GET_MEETING_INFO, CREATE, INSERT_DOCUMENT, JOIN = 0, 1 << 2, 2 << 2, 3 << 2
CALL_NAMES = {GET_MEETING_INFO: "getMeetingInfo", CREATE: "create", INSERT_DOCUMENT: "insertDocument", JOIN: "join"}


def sign(call, check_string, algorithm="sha1", upper=False):
    digest = hashlib.new(algorithm, (call + check_string + SECRET).encode()).hexdigest()
    return digest.upper() if upper else digest


def query_seed(name, flags, query, content_type="", body=""):
    write("query", name, bytes([flags]) + f"{query}\n{content_type}\n{body}".encode())


def signed(call_flag, query, algorithm="sha1", upper=False):
    return f"{query}&checksum={sign(CALL_NAMES[call_flag], query, algorithm, upper)}"


def query_seeds():
    query_seed("get-meeting-info-sha1", GET_MEETING_INFO, signed(GET_MEETING_INFO, "meetingID=room-42"))
    create = (
        "allowStartStopRecording=true&attendeePW=ap&autoStartRecording=false&meetingID=room-42"
        "&meta_bbb-origin=Greenlight&meta_bbb-origin-server-name=gl.example.edu&moderatorPW=mp"
        "&name=Room+42+%E2%80%93+%C3%9Cbung&record=true&voiceBridge=71234&welcome=Welcome%21"
    )
    query_seed("create-sha256", CREATE, signed(CREATE, create, "sha256"))
    join = "fullName=Alice+M%C3%BCller&meetingID=room-42&role=MODERATOR&redirect=true&userID=u-1"
    query_seed("join-sha512", JOIN, signed(JOIN, join, "sha512"))
    query_seed("join-sha384-upper", JOIN, signed(JOIN, "fullName=Bob&meetingID=room-42&password=ap", "sha384", True))
    # Checksum first, repeated parameters, an empty value.
    q = "meetingID=a&meetingID=b&password="
    query_seed("checksum-first", GET_MEETING_INFO, f"checksum={sign('getMeetingInfo', q)}&{q}")
    query_seed("wrong-checksum", GET_MEETING_INFO, "meetingID=room-42&checksum=" + "0" * 40)
    # POST bodies: the raw body signed, checksum in the query.
    body = "meetingID=room-42&name=x+y"
    query_seed(
        "post-form-raw-body",
        POST | CONTENT_TYPE | GET_MEETING_INFO,
        f"checksum={sign('getMeetingInfo', body)}",
        "application/x-www-form-urlencoded",
        body,
    )
    # bbb-web 2.5+: parameters sorted and encoded, checksum in the body.
    query_seed(
        "post-form-sorted-checksum-in-body",
        POST | CONTENT_TYPE | CREATE,
        "",
        "application/x-www-form-urlencoded; charset=UTF-8",
        f"name=x+y&meetingID=b&checksum={sign('create', 'meetingID=b&name=x+y', 'sha256')}",
    )
    multipart = (
        '--XyZ\r\nContent-Disposition: form-data; name="meetingID"\r\n\r\nm1\r\n'
        '--XyZ\r\nContent-Disposition: form-data; name="slides"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\r\n--XyZ--\r\n"
    )
    query_seed(
        "post-multipart",
        POST | CONTENT_TYPE | GET_MEETING_INFO,
        f"checksum={sign('getMeetingInfo', 'meetingID=m1')}",
        "multipart/form-data; boundary=XyZ",
        multipart,
    )
    slides = (
        '<?xml version="1.0" encoding="UTF-8"?><modules><module name="presentation">'
        '<document url="https://example.com/slides.pdf" filename="slides.pdf"/>'
        '<document name="inline.pdf">JVBERi0xLjQK</document></module></modules>'
    )
    query_seed(
        "post-create-xml",
        POST | CONTENT_TYPE | CREATE,
        signed(CREATE, "meetingID=room-42&name=Room"),
        "application/xml",
        slides,
    )
    query_seed(
        "post-insert-document",
        POST | CONTENT_TYPE | INSERT_DOCUMENT,
        signed(INSERT_DOCUMENT, "meetingID=room-42"),
        "text/xml",
        slides,
    )
    query_seed("post-json-refused", POST | CONTENT_TYPE | GET_MEETING_INFO, "checksum=bad", "application/json", "{}")
    query_seed("post-no-content-type", POST | GET_MEETING_INFO, "checksum=bad", "", "meetingID=a")


# --- bbb_reply: what BBB servers answer ------------------------------------

def meeting(meeting_id, internal, participants, moderators, videos, breakout=False, create_time=1715261728123):
    attendees = "".join(
        f"""
        <attendee>
          <userID>w_{i}</userID>
          <fullName>User {i}</fullName>
          <role>{"MODERATOR" if i < moderators else "VIEWER"}</role>
          <isPresenter>{"true" if i == 0 else "false"}</isPresenter>
          <isListeningOnly>false</isListeningOnly>
          <hasJoinedVoice>true</hasJoinedVoice>
          <hasVideo>{"true" if i < videos else "false"}</hasVideo>
          <clientType>HTML5</clientType>
          <customdata></customdata>
        </attendee>"""
        for i in range(participants)
    )
    parent = "<parentMeetingID>bbb-none</parentMeetingID>" if not breakout else ""
    breakout_xml = (
        f"<breakout><parentMeetingID>{internal[:-1]}0</parentMeetingID><sequence>1</sequence>"
        "<freeJoin>false</freeJoin></breakout>"
        if breakout
        else "<breakoutRooms><breakout>x</breakout></breakoutRooms>"
    )
    return f"""
    <meeting>
      <meetingName>Room &amp; {meeting_id}</meetingName>
      <meetingID>{meeting_id}</meetingID>
      <internalMeetingID>{internal}</internalMeetingID>
      <createTime>{create_time}</createTime>
      <createDate>Thu May 09 13:35:28 UTC 2024</createDate>
      <voiceBridge>71234</voiceBridge>
      <dialNumber>613-555-1234</dialNumber>
      <attendeePW>ap</attendeePW>
      <moderatorPW>mp</moderatorPW>
      <running>true</running>
      <duration>0</duration>
      <hasUserJoined>true</hasUserJoined>
      <recording>true</recording>
      <hasBeenForciblyEnded>false</hasBeenForciblyEnded>
      <startTime>{create_time + 12}</startTime>
      <endTime>0</endTime>
      <participantCount>{participants}</participantCount>
      <listenerCount>0</listenerCount>
      <voiceParticipantCount>{participants}</voiceParticipantCount>
      <videoCount>{videos}</videoCount>
      <maxUsers>0</maxUsers>
      <moderatorCount>{moderators}</moderatorCount>
      <attendees>{attendees}
      </attendees>
      <metadata>
        <bbb-origin-version>v3</bbb-origin-version>
        <bbb-origin>Greenlight</bbb-origin>
        <bbb-context><![CDATA[Übung <3> & more]]></bbb-context>
      </metadata>
      <isBreakout>{"true" if breakout else "false"}</isBreakout>
      {parent}{breakout_xml}
    </meeting>"""


def response(body):
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <returncode>SUCCESS</returncode>{body}\n</response>\n'


def failed(key, message):
    return (
        "<response>\n<returncode>FAILED</returncode>\n"
        f"<messageKey>{key}</messageKey>\n<message>{message}</message>\n</response>"
    )


def bbb_reply_seeds():
    internal = "9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123"
    meetings = meeting("room-42", internal, 3, 1, 2) + meeting(
        "room-42-breakout-1", "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c-1715261799000", 2, 0, 0, breakout=True
    )
    write("bbb_reply", "get-meetings", response(f"\n  <meetings>{meetings}\n  </meetings>"))
    write(
        "bbb_reply",
        "get-meetings-none",
        response(
            "\n<meetings/>\n<messageKey>noMeetings</messageKey>\n<message>no meetings were found on this server</message>"
        ),
    )
    info = meeting("room-42", internal, 2, 1, 1)
    info = info.replace("<meeting>", "").replace("</meeting>", "")
    write("bbb_reply", "get-meeting-info", response(info))
    write(
        "bbb_reply",
        "create",
        response(
            f"""
  <meetingID>room-42</meetingID>
  <internalMeetingID>{internal}</internalMeetingID>
  <parentMeetingID>bbb-none</parentMeetingID>
  <attendeePW>ap</attendeePW>
  <moderatorPW>mp</moderatorPW>
  <createTime>1715261728123</createTime>
  <voiceBridge>71234</voiceBridge>
  <dialNumber>613-555-1234</dialNumber>
  <createDate>Thu May 09 13:35:28 UTC 2024</createDate>
  <hasUserJoined>false</hasUserJoined>
  <duration>0</duration>
  <hasBeenForciblyEnded>false</hasBeenForciblyEnded>
  <messageKey>duplicateWarning</messageKey>
  <message>This conference was already in existence and may currently be in progress.</message>"""
        ),
    )
    write("bbb_reply", "is-meeting-running", response("\n  <running>true</running>"))
    write(
        "bbb_reply",
        "failed-checksum",
        failed("checksumError", "Checksums do not match"),
    )
    write(
        "bbb_reply",
        "failed-not-found",
        failed("notFound", "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?"),
    )
    write(
        "bbb_reply",
        "end",
        response(
            "\n  <messageKey>sentEndMeetingRequest</messageKey>\n"
            "  <message>A request to end the meeting was sent.  Please wait a few seconds, and then use the "
            "getMeetingInfo or isMeetingRunning API calls to verify that it was ended.</message>"
        ),
    )
    write(
        "bbb_reply",
        "get-recordings",
        response(
            f"""
  <recordings>
    <recording>
      <recordID>{RECORD_ID}</recordID>
      <meetingID>room-42</meetingID>
      <internalMeetingID>{RECORD_ID}</internalMeetingID>
      <name>Room 42</name>
      <isBreakout>false</isBreakout>
      <published>true</published>
      <state>published</state>
      <startTime>1715261728123</startTime>
      <endTime>1715265331456</endTime>
      <participants>3</participants>
      <metadata><bbb-origin>Greenlight</bbb-origin><gl-listed>false</gl-listed></metadata>
      <playback>
        <format>
          <type>presentation</type>
          <url>https://{HOST}/playback/presentation/2.3/{RECORD_ID}</url>
          <length>60</length>
          <preview><images><image alt="Welcome" height="136" width="176">https://{HOST}/thumb-1.png</image></images></preview>
        </format>
      </playback>
    </recording>
  </recordings>"""
        ),
    )
    write(
        "bbb_reply",
        "html-error-page",
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
        "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n",
    )
    # Findings, kept so every run checks them again.
    write("bbb_reply", "finding-nameless-element", "<\r/>")
    max_u64 = 2**64 - 1
    write(
        "bbb_reply",
        "finding-count-overflow",
        response(
            f"<meetings><meeting><participantCount>{max_u64}</participantCount><moderatorCount>{max_u64}"
            f"</moderatorCount><videoCount>{max_u64}</videoCount></meeting><meeting><participantCount>1"
            "</participantCount><videoCount>1</videoCount></meeting></meetings>"
        ),
    )


# --- metadata: metadata.xml as BBB's publish scripts write it --------------

def metadata_xml(fmt, state="published", breakout=False, link=None, thumbnails=True):
    link = link or {
        "presentation": f"https://{HOST}/playback/presentation/2.3/{RECORD_ID}",
        "video": f"https://{HOST}/playback/video/{RECORD_ID}/",
        "podcast": f"https://{HOST}/podcast/{RECORD_ID}/audio.ogg",
        "notes": f"https://{HOST}/notes/{RECORD_ID}/notes.pdf",
        "screenshare": f"https://{HOST}/recording/screenshare/{RECORD_ID}/",
    }[fmt]
    x = '<?xml version="1.0" encoding="UTF-8"?>\n<recording>\n'
    x += f"  <id>{RECORD_ID}</id>\n  <state>{state}</state>\n  <published>{'true' if state != 'unpublished' else 'false'}</published>\n"
    x += "  <start_time>1715261728123</start_time>\n  <end_time>1715265331456</end_time>\n  <participants>3</participants>\n"
    x += f'  <meeting id="{RECORD_ID}" externalId="room-42" name="Room 42 &amp; friends" breakout="{str(breakout).lower()}"/>\n'
    if breakout:
        x += f'  <breakout parentMeetingId="0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c-1715261700000" sequence="2" meetingId="{RECORD_ID}"/>\n'
    x += f"  <meta>\n    <isBreakout>{str(breakout).lower()}</isBreakout>\n    <meetingId>room-42</meetingId>\n"
    x += "    <meetingName>Room 42 &amp; friends</meetingName>\n    <bbb-origin>greenlight</bbb-origin>\n"
    x += "    <bbb-origin-version>v3</bbb-origin-version>\n    <bbb-origin-server-name>gl.example.edu</bbb-origin-server-name>\n"
    x += "    <bbb-context-name><![CDATA[Übung 3]]></bbb-context-name>\n    <gl-listed>false</gl-listed>\n  </meta>\n"
    x += f"  <playback>\n    <format>{fmt}</format>\n    <link>{link}</link>\n"
    x += "    <processing_time>56734</processing_time>\n    <duration>3596310</duration>\n"
    if thumbnails and fmt == "presentation":
        base = f"https://{HOST}/presentation/{RECORD_ID}/presentation/d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261729123/thumbnails"
        x += "    <extensions>\n      <preview>\n        <images>\n"
        for n, alt in enumerate(["Welcome to BigBlueButton", "Agenda &#8211; Übung 3", "Fragen?"], 1):
            x += f'          <image width="176" height="136" alt="{alt}">{base}/thumb-{n}.png</image>\n'
        x += "        </images>\n      </preview>\n    </extensions>\n"
    x += "    <size>2743009</size>\n  </playback>\n  <raw_size>977816</raw_size>\n</recording>\n"
    return x


def metadata_seeds():
    write("metadata", "presentation", metadata_xml("presentation"))
    write("metadata", "video-unpublished", metadata_xml("video", state="unpublished"))
    write("metadata", "screenshare-available", metadata_xml("screenshare", state="available"))
    write("metadata", "podcast-breakout", metadata_xml("podcast", breakout=True))
    write("metadata", "notes-path-link", metadata_xml("notes", link="/notes/r/notes.pdf?x=1#y"))
    write(
        "metadata",
        "minimal",
        "<recording><id>r-1</id><meta><meetingId>m</meetingId></meta>"
        "<playback><format>presentation</format><link>http://h/p</link></playback></recording>",
    )


# --- archive: spool archives (<format>/<record_id>/...) --------------------

def tar_bytes(members, fmt=tarfile.GNU_FORMAT, pad=False):
    """members: (name, bytes | None for a directory | ('symlink', target))."""
    saved = tarfile.RECORDSIZE
    if not pad:
        # GNU tar pads to 10 KiB records; the seeds end after the two zero blocks.
        tarfile.RECORDSIZE = tarfile.BLOCKSIZE
    try:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
            for name, content in members:
                info = tarfile.TarInfo(name)
                info.mtime = 1715265400
                info.uname, info.gname = "bigbluebutton", "bigbluebutton"
                info.uid = info.gid = 998
                if content is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                elif isinstance(content, tuple):
                    info.type, info.linkname = tarfile.SYMTYPE, content[1]
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(content), 0o644
                    tar.addfile(info, io.BytesIO(content))
        return out.getvalue()
    finally:
        tarfile.RECORDSIZE = saved


def recording_members(formats, extra=()):
    members = []
    for fmt in formats:
        base = f"{fmt}/{RECORD_ID}"
        members += [(f"{fmt}/", None), (f"{base}/", None), (f"{base}/metadata.xml", metadata_xml(fmt).encode())]
        if fmt == "presentation":
            members += [
                (f"{base}/shapes.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'),
                (f"{base}/presentation/", None),
                (f"{base}/presentation/slide-1.png", b"\x89PNG\r\n\x1a\n" + bytes(range(64))),
            ]
        elif fmt == "video":
            members.append((f"{base}/video-0.m4v", b"\x00\x00\x00\x18ftypmp42" + bytes(32)))
    return members + list(extra)


def archive_seeds():
    write("archive", "presentation-gnu", tar_bytes(recording_members(["presentation"])))
    write("archive", "presentation-gnu-padded", tar_bytes(recording_members(["presentation"]), pad=True))
    write("archive", "two-formats-ustar", tar_bytes(recording_members(["presentation", "video"]), tarfile.USTAR_FORMAT))
    long = f"presentation/{RECORD_ID}/presentation/" + "d2d9a672040fbde2a47a10bf6c37b6a4b5ae187f-1715261729123" + "/svgs/slide1.svg"
    write("archive", "long-name-gnu", tar_bytes(recording_members(["presentation"], [(long, b"<svg/>")])))
    write(
        "archive",
        "long-name-pax",
        tar_bytes(recording_members(["presentation"], [(long, b"<svg/>")]), tarfile.PAX_FORMAT),
    )
    write(
        "archive",
        "symlink-refused",
        tar_bytes(recording_members(["podcast"], [(f"podcast/{RECORD_ID}/audio.ogg", ("symlink", "/etc/passwd"))])),
    )
    write(
        "archive",
        "dotdot-refused",
        tar_bytes([(f"notes/{RECORD_ID}/../../../evil", b"x"), (f"notes/{RECORD_ID}/metadata.xml", metadata_xml("notes").encode())]),
    )


def main():
    for target in ["query", "bbb_reply", "metadata", "archive"]:
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)
    query_seeds()
    bbb_reply_seeds()
    metadata_seeds()
    archive_seeds()


if __name__ == "__main__":
    main()
