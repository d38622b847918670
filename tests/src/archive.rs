//! Recording archives as they arrive in Scalelite's spool.
//!
//! BigBlueButton publishes each format of a recording into
//! `<published_dir>/<format>/<record_id>/` with a `metadata.xml`; Scalelite's
//! post-publish script packs those directories into an uncompressed
//! `<record_id>.tar` (members `<format>/<record_id>/…`) and rsyncs it into
//! the spool under a hidden temporary name that it renames at the end.
//! [`RecordingArchive`] produces the same: realistic `metadata.xml` as BBB
//! 2.7/3.0 writes it and the files each format holds, packed by the `tar`
//! crate or by GNU tar itself. [`RawTar`] writes the malformed and hostile
//! archives that no honest BBB server makes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use scalelite_core::xml::escape;
use sha1::{Digest, Sha1};

/// The playback formats BBB publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// The HTML5 presentation playback (slides, whiteboard, webcams, chat).
    Presentation,
    /// One rendered video file.
    Video,
    /// Audio only.
    Podcast,
    /// The shared notes as a PDF.
    Notes,
    /// Screen sharing and webcams (BBB writes `state` `available`).
    Screenshare,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 5] =
        [Format::Presentation, Format::Video, Format::Podcast, Format::Notes, Format::Screenshare];

    /// The directory and `<playback><format>` name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Presentation => "presentation",
            Format::Video => "video",
            Format::Podcast => "podcast",
            Format::Notes => "notes",
            Format::Screenshare => "screenshare",
        }
    }
}

/// A breakout room's link to its parent meeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breakout {
    /// The parent's internal meeting id.
    pub parent_record_id: String,
    /// The room number.
    pub sequence: u32,
}

/// One recording, with everything its archive holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingArchive {
    /// Internal meeting id = record id (`<sha1>-<epoch ms>`).
    pub record_id: String,
    /// External meeting id (`meta/meetingId`).
    pub meeting_id: String,
    /// `meta/meetingName`.
    pub name: String,
    /// `published`.
    pub published: bool,
    /// `state`.
    pub state: String,
    /// `start_time` (epoch ms).
    pub start_ms: i64,
    /// `end_time` (epoch ms).
    pub end_ms: i64,
    /// `participants`.
    pub participants: u32,
    /// `playback/duration` (ms).
    pub duration_ms: u64,
    /// `meta/*` besides `isBreakout`, `meetingId`, `meetingName`.
    pub meta: Vec<(String, String)>,
    /// Breakout room of another meeting.
    pub breakout: Option<Breakout>,
    /// Formats in the archive.
    pub formats: Vec<Format>,
    /// The BBB server's host name in playback links.
    pub host: String,
    /// Extra files per format (`(path below <format>/<record_id>/, content)`).
    pub extra_files: Vec<(Format, String, Vec<u8>)>,
    /// Salt that changes file contents (to tell two imports apart).
    pub revision: u32,
    /// BigBlueButton 3.0's layouts: the tldraw-based presentation
    /// (`tldraw.json`, MP4 media) and the video format with its own player.
    pub bbb3: bool,
}

impl RecordingArchive {
    /// A published presentation recording of `meeting_id` made through
    /// Greenlight, started at a fixed time plus a random offset.
    pub fn new(meeting_id: &str, name: &str) -> Self {
        let start_ms = 1_715_261_728_123 + rand::random_range(0..10_000_000_i64);
        let digest = Sha1::digest(format!("{meeting_id}{}", rand::random::<u64>()).as_bytes());
        let record_id = format!("{}-{start_ms}", hex::encode(digest));
        Self {
            record_id,
            meeting_id: meeting_id.to_owned(),
            name: name.to_owned(),
            published: true,
            state: "published".into(),
            start_ms,
            end_ms: start_ms + 3_603_333,
            participants: 3,
            duration_ms: 3_596_310,
            meta: vec![
                ("bbb-origin".into(), "greenlight".into()),
                ("bbb-origin-version".into(), "v3".into()),
                ("bbb-origin-server-name".into(), "gl.example.edu".into()),
                ("bbb-context-name".into(), name.to_owned()),
                ("gl-listed".into(), "false".into()),
            ],
            breakout: None,
            formats: vec![Format::Presentation],
            host: "bbb1.example.edu".into(),
            extra_files: Vec::new(),
            revision: 0,
            bbb3: false,
        }
    }

    /// Sets the formats.
    pub fn formats(mut self, formats: &[Format]) -> Self {
        self.formats = formats.to_vec();
        self
    }

    /// Adds (or replaces) a `meta` element.
    pub fn meta(mut self, key: &str, value: &str) -> Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `published` false, `state` `unpublished`.
    pub fn unpublished(mut self) -> Self {
        self.published = false;
        self.state = "unpublished".into();
        self
    }

    /// Sets `state`.
    pub fn state(mut self, state: &str) -> Self {
        self.state = state.to_owned();
        self
    }

    /// Makes this a breakout room (`sequence`) of `parent`.
    pub fn breakout_of(mut self, parent: &RecordingArchive, sequence: u32) -> Self {
        self.breakout = Some(Breakout { parent_record_id: parent.record_id.clone(), sequence });
        self
    }

    /// Adds a file below `<format>/<record_id>/`.
    pub fn file(mut self, format: Format, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.extra_files.push((format, path.to_owned(), content.into()));
        self
    }

    /// Uses BigBlueButton 3.0's layouts: the tldraw-based presentation and the video format with its player.
    pub fn bbb3(mut self) -> Self {
        self.bbb3 = true;
        self
    }

    /// Changes every file's content (a re-processed recording).
    pub fn revision(mut self, revision: u32) -> Self {
        self.revision = revision;
        self
    }

    /// `<record_id>.tar`.
    pub fn file_name(&self) -> String {
        format!("{}.tar", self.record_id)
    }

    /// The presentation id of the uploaded slides.
    fn presentation_id(&self) -> String {
        format!("{}-{}", hex::encode(Sha1::digest(b"default.pdf")), self.start_ms + 1_000)
    }

    /// The `<playback>` link of a format.
    pub fn link(&self, format: Format) -> String {
        let (host, id) = (&self.host, &self.record_id);
        match format {
            Format::Presentation => format!("https://{host}/playback/presentation/2.3/{id}"),
            Format::Video => format!("https://{host}/playback/video/{id}/"),
            Format::Podcast => format!("https://{host}/podcast/{id}/audio.ogg"),
            Format::Notes => format!("https://{host}/notes/{id}/notes.pdf"),
            Format::Screenshare => format!("https://{host}/recording/screenshare/{id}/"),
        }
    }

    /// Preview images of the presentation format: `(width, height, alt, url)`.
    pub fn thumbnails(&self) -> Vec<(u32, u32, String, String)> {
        let base = format!(
            "https://{}/presentation/{}/presentation/{}/thumbnails",
            self.host,
            self.record_id,
            self.presentation_id()
        );
        vec![
            (176, 136, "Welcome to BigBlueButton".into(), format!("{base}/thumb-1.png")),
            (176, 136, "Agenda – Übung 3".into(), format!("{base}/thumb-2.png")),
            (176, 136, "Fragen?".into(), format!("{base}/thumb-3.png")),
        ]
    }

    /// `metadata.xml` of a format, as BBB's publish script writes it.
    pub fn metadata_xml(&self, format: Format) -> String {
        let id = &self.record_id;
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<recording>\n");
        x.push_str(&format!("  <id>{id}</id>\n"));
        let state = if format == Format::Screenshare && self.state == "published" { "available" } else { &self.state };
        x.push_str(&format!("  <state>{}</state>\n", escape(state)));
        x.push_str(&format!("  <published>{}</published>\n", self.published));
        x.push_str(&format!("  <start_time>{}</start_time>\n  <end_time>{}</end_time>\n", self.start_ms, self.end_ms));
        x.push_str(&format!("  <participants>{}</participants>\n", self.participants));
        x.push_str(&format!(
            "  <meeting id=\"{id}\" externalId=\"{}\" name=\"{}\" breakout=\"{}\"/>\n",
            escape(&self.meeting_id),
            escape(&self.name),
            self.breakout.is_some()
        ));
        if let Some(b) = &self.breakout {
            x.push_str(&format!(
                "  <breakout parentMeetingId=\"{}\" sequence=\"{}\" meetingId=\"{id}\"/>\n",
                b.parent_record_id, b.sequence
            ));
        }
        x.push_str("  <meta>\n");
        x.push_str(&format!("    <isBreakout>{}</isBreakout>\n", self.breakout.is_some()));
        x.push_str(&format!("    <meetingId>{}</meetingId>\n", escape(&self.meeting_id)));
        x.push_str(&format!("    <meetingName>{}</meetingName>\n", escape(&self.name)));
        for (key, value) in &self.meta {
            x.push_str(&format!("    <{key}>{}</{key}>\n", escape(value)));
        }
        x.push_str("  </meta>\n  <playback>\n");
        x.push_str(&format!("    <format>{}</format>\n", format.name()));
        x.push_str(&format!("    <link>{}</link>\n", escape(&self.link(format))));
        x.push_str("    <processing_time>56734</processing_time>\n");
        x.push_str(&format!("    <duration>{}</duration>\n", self.duration_ms));
        if format == Format::Presentation {
            x.push_str("    <extensions>\n      <preview>\n        <images>\n");
            for (w, h, alt, url) in self.thumbnails() {
                x.push_str(&format!(
                    "          <image width=\"{w}\" height=\"{h}\" alt=\"{}\">{}</image>\n",
                    escape(&alt),
                    escape(&url)
                ));
            }
            x.push_str("        </images>\n      </preview>\n    </extensions>\n");
        }
        x.push_str("    <size>2743009</size>\n  </playback>\n  <raw_size>977816</raw_size>\n</recording>\n");
        x
    }

    /// The files of a format (paths below `<format>/<record_id>/`), in
    /// archive order, `metadata.xml` first.
    pub fn files(&self, format: Format) -> Vec<(String, Vec<u8>)> {
        let r = self.revision;
        let blob = |name: &str, len: usize| -> Vec<u8> {
            let seed = format!("{}/{name}/{r}", self.record_id);
            let mut out = Vec::with_capacity(len);
            let mut block = Sha1::digest(seed.as_bytes()).to_vec();
            while out.len() < len {
                out.extend_from_slice(&block);
                block = Sha1::digest(&block).to_vec();
            }
            out.truncate(len);
            out
        };
        let mut files = vec![("metadata.xml".to_owned(), self.metadata_xml(format).into_bytes())];
        match format {
            Format::Presentation => {
                let pres = self.presentation_id();
                files.push(("shapes.svg".into(), format!("<svg rev=\"{r}\"></svg>").into_bytes()));
                files.push(("panzooms.xml".into(), b"<recording/>".to_vec()));
                files.push(("cursor.xml".into(), b"<recording/>".to_vec()));
                files.push(("deskshare.xml".into(), b"<recording/>".to_vec()));
                files.push(("slides_new.xml".into(), "<popcorn>Grüße 日本語</popcorn>".as_bytes().to_vec()));
                files.push(("presentation_text.json".into(), b"{}".to_vec()));
                files.push(("captions.json".into(), b"[]".to_vec()));
                files.push(("external_videos.json".into(), b"[]".to_vec()));
                files.push(("video/webcams.webm".into(), blob("webcams.webm", 96 * 1024)));
                files.push(("deskshare/deskshare.webm".into(), blob("deskshare.webm", 32 * 1024)));
                if self.bbb3 {
                    // The tldraw whiteboard of BBB 2.7+ and the MP4 copies
                    // the 3.0 player prefers.
                    let tldraw = format!("{{\"rev\":{r},\"shapes\":[{{\"type\":\"draw\",\"text\":\"Grüße\"}}]}}");
                    files.push(("tldraw.json".into(), tldraw.into_bytes()));
                    files.push(("video/webcams.mp4".into(), blob("webcams.mp4", 80 * 1024)));
                    files.push(("deskshare/deskshare.mp4".into(), blob("deskshare.mp4", 24 * 1024)));
                }
                for n in 1..=3 {
                    files.push((format!("presentation/{pres}/slide-{n}.png"), blob(&format!("slide-{n}"), 4096)));
                    files.push((format!("presentation/{pres}/svgs/slide{n}.svg"), b"<svg/>".to_vec()));
                    files.push((format!("presentation/{pres}/thumbnails/thumb-{n}.png"), blob(&format!("t{n}"), 512)));
                }
            }
            Format::Video => {
                files.push(("video-0.m4v".into(), blob("video-0.m4v", 128 * 1024)));
                files.push(("captions.json".into(), b"[]".to_vec()));
                if self.bbb3 {
                    // The format's own player page and assets.
                    files.push(("index.html".into(), format!("<!doctype html><title>video {r}</title>").into_bytes()));
                    files.push(("video-0.webm".into(), blob("video-0.webm", 96 * 1024)));
                    files.push(("css/playback.css".into(), b"video{width:100%}".to_vec()));
                }
            }
            Format::Podcast => files.push(("audio.ogg".into(), blob("audio.ogg", 64 * 1024))),
            Format::Notes => files.push(("notes.pdf".into(), blob("notes.pdf", 8 * 1024))),
            Format::Screenshare => {
                files.push(("screenshare.webm".into(), blob("screenshare.webm", 64 * 1024)));
                files.push(("index.html".into(), b"<!doctype html>".to_vec()));
            }
        }
        for (f, path, content) in &self.extra_files {
            if *f == format {
                files.push((path.clone(), content.clone()));
            }
        }
        files
    }

    /// Every file of the archive as `<format>/<record_id>/<path>` with its
    /// content.
    pub fn members(&self) -> Vec<(String, Vec<u8>)> {
        self.formats
            .iter()
            .flat_map(|&f| {
                self.files(f)
                    .into_iter()
                    .map(move |(path, content)| (format!("{}/{}/{path}", f.name(), self.record_id), content))
            })
            .collect()
    }

    /// The archive as a tar file whose every `metadata.xml` carries
    /// `extra` just before `</meta>` (hostile metadata: deep nesting, odd
    /// characters), written member by member as [`RawTar`] does.
    pub fn tar_with_metadata_extra(&self, extra: &str) -> Vec<u8> {
        self.members()
            .into_iter()
            .map(|(path, content)| {
                if !path.ends_with("/metadata.xml") {
                    return (path, content);
                }
                let xml = String::from_utf8(content).expect("metadata.xml is UTF-8");
                (path, xml.replacen("</meta>", &format!("{extra}</meta>"), 1).into_bytes())
            })
            .fold(RawTar::new(), |tar, (path, content)| tar.file(&path, &content))
            .finish()
    }

    /// The archive, packed by the `tar` crate (GNU headers, long names as
    /// GNU long-name members), in memory.
    pub fn tar(&self) -> Vec<u8> {
        let mut raw = RawTar::new();
        for &format in &self.formats {
            raw = raw.dir(&format!("{}/", format.name())).dir(&format!("{}/{}/", format.name(), self.record_id));
        }
        for (path, content) in self.members() {
            raw = raw.file(&path, &content);
        }
        raw.finish()
    }

    /// Writes the published directories of this recording below `root`
    /// (`<root>/<format>/<record_id>/…`), as BBB leaves them.
    pub fn write_published_tree(&self, root: &Path) {
        for (path, content) in self.members() {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
            std::fs::write(path, content).expect("write file");
        }
    }

    /// Packs the recording with GNU tar exactly as `scalelite_post_publish.rb`
    /// does (`tar --create --file <out> <format>/<record_id>…` inside the
    /// published directory).
    ///
    /// # Panics
    ///
    /// Panics when `tar` is missing or fails.
    pub fn pack_with_gnu_tar(&self, out: &Path) {
        let published = tempfile::tempdir().expect("temp dir");
        self.write_published_tree(published.path());
        let dirs: Vec<String> = self.formats.iter().map(|f| format!("{}/{}", f.name(), self.record_id)).collect();
        let status = Command::new("tar")
            .args(["--create", "--file"])
            .arg(out)
            .args(&dirs)
            .current_dir(published.path())
            .status()
            .expect("run GNU tar (Debian package tar)");
        assert!(status.success(), "tar --create failed");
    }

    /// Writes the archive into `spool` like rsync: to a hidden temporary
    /// name first, renamed to `<record_id>.tar` when complete. Returns the
    /// final path.
    pub fn drop_into(&self, spool: &Path) -> PathBuf {
        drop_bytes(spool, &self.file_name(), &self.tar())
    }
}

/// Writes `bytes` into `spool` as `name` the way rsync does (hidden
/// temporary file, then rename).
///
/// # Panics
///
/// Panics on I/O errors.
pub fn drop_bytes(spool: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let temporary = spool.join(format!(".{name}.{:06x}", rand::random_range(0..0xff_ffff)));
    let mut file = std::fs::File::create(&temporary).expect("create temporary archive");
    file.write_all(bytes).expect("write archive");
    file.sync_all().expect("sync archive");
    let target = spool.join(name);
    std::fs::rename(&temporary, &target).expect("rename archive into place");
    target
}

/// A tar writer that writes what it is told: any member name (absolute,
/// with `..`), links, devices, FIFOs. For archives no BBB server makes.
#[derive(Debug, Default)]
pub struct RawTar {
    out: Vec<u8>,
}

/// Tar member types [`RawTar`] can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link.
    Hardlink,
    /// A character device.
    CharDevice,
    /// A FIFO.
    Fifo,
}

impl RawTar {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a member; names over 100 bytes get a GNU long-name member
    /// first, as GNU tar writes them.
    pub fn member(mut self, kind: Kind, path: &str, content: &[u8], link: &str) -> Self {
        if path.len() > 100 {
            let mut name = path.as_bytes().to_vec();
            name.push(0);
            self.header(b'L', "././@LongLink", name.len() as u64, "");
            self.data(&name);
        }
        let (flag, size) = match kind {
            Kind::File => (b'0', content.len() as u64),
            Kind::Dir => (b'5', 0),
            Kind::Symlink => (b'2', 0),
            Kind::Hardlink => (b'1', 0),
            Kind::CharDevice => (b'3', 0),
            Kind::Fifo => (b'6', 0),
        };
        // The name field keeps the first 100 bytes, as GNU tar writes it.
        self.header(flag, path, size, link);
        if kind == Kind::File {
            self.data(content);
        }
        self
    }

    /// Appends a regular file.
    pub fn file(self, path: &str, content: &[u8]) -> Self {
        self.member(Kind::File, path, content, "")
    }

    /// Appends a directory.
    pub fn dir(self, path: &str) -> Self {
        self.member(Kind::Dir, path, b"", "")
    }

    /// Appends the members of a recording.
    pub fn recording(mut self, recording: &RecordingArchive) -> Self {
        for (path, content) in recording.members() {
            self = self.file(&path, &content);
        }
        self
    }

    /// Appends raw bytes (for corrupting an archive).
    pub fn raw_bytes(mut self, bytes: &[u8]) -> Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// The archive with its two end-of-archive zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(&[0; 1024]);
        self.out
    }

    /// The archive without the end-of-archive blocks (as if cut short).
    pub fn unfinished(self) -> Vec<u8> {
        self.out
    }

    fn header(&mut self, flag: u8, name: &str, size: u64, link: &str) {
        let mut h = [0u8; 512];
        let name = name.as_bytes();
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        let mode = if flag == b'5' { "0000755" } else { "0000644" };
        h[100..107].copy_from_slice(mode.as_bytes());
        h[108..115].copy_from_slice(b"0001750");
        h[116..123].copy_from_slice(b"0001750");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(format!("{:011o}", 1_715_265_331u64).as_bytes());
        h[156] = flag;
        let link = link.as_bytes();
        h[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
        // GNU magic and version ("ustar  \0").
        h[257..265].copy_from_slice(b"ustar  \0");
        h[265..273].copy_from_slice(b"bigblueb");
        h[297..305].copy_from_slice(b"bigblueb");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        self.out.extend_from_slice(&h);
    }

    fn data(&mut self, content: &[u8]) {
        self.out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0, pad));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_and_rawtar_agree_on_the_members() {
        let rec = RecordingArchive::new("room-1", "Vorlesung Grundlagen – Übung 3 日本語").formats(&Format::ALL);
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.tar");
        std::fs::write(&ours, rec.tar()).unwrap();
        let gnu = dir.path().join("gnu.tar");
        rec.pack_with_gnu_tar(&gnu);
        let list = |path: &Path| {
            let out = Command::new("tar").arg("--list").arg("--file").arg(path).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let mut names: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .filter(|l| !l.ends_with('/'))
                .map(str::to_owned)
                .collect();
            names.sort();
            names
        };
        let mut expected: Vec<String> = rec.members().into_iter().map(|(p, _)| p).collect();
        expected.sort();
        assert_eq!(list(&ours), expected);
        assert_eq!(list(&gnu), expected);
        assert!(expected.iter().any(|p| p.len() > 100), "long names are exercised");
    }

    #[test]
    fn metadata_is_well_formed_xml() {
        let parent = RecordingArchive::new("room-1", "A & B <c>");
        let rec = RecordingArchive::new("room-1-breakout", "A & B (Room 1)").breakout_of(&parent, 1);
        for format in Format::ALL {
            let doc = scalelite_core::xml::parse(rec.metadata_xml(format).as_bytes()).unwrap();
            assert_eq!(doc.text_at("meta/meetingName").as_deref(), Some("A & B (Room 1)"));
            assert_eq!(doc.text_at("meta/isBreakout").as_deref(), Some("true"));
            assert_eq!(doc.text_at("playback/format").as_deref(), Some(format.name()));
        }
    }
}
