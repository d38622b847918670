//! `PUT /scalelite/upload/<name>.tar`: a BBB server uploads a recording
//! archive into the spool (`RECORDING_UPLOAD_ENABLED`), in place of
//! rsyncing it there. The importer then treats it as any other archive.
//!
//! Everything is decided from the request head before a byte of the body
//! is read (a client sending `Expect: 100-continue` never sends the body of
//! a refused upload):
//!
//! 1. the name (`<record_id>.tar`, see [`valid_archive_name`]), a
//!    `Content-Length` (411 without one) of at most
//!    `RECORDING_UPLOAD_MAX_BYTES` (413);
//! 2. the headers `X-Scalelite-Server` (the server's id, or its API URL as
//!    registered), `X-Scalelite-Timestamp` (Unix seconds),
//!    `X-Scalelite-Content-Sha256` (the archive's hex SHA-256) and
//!    `X-Scalelite-Checksum`, the checksum of [`scalelite_core::upload`]
//!    made with that server's secret (401 when the server is unknown or the
//!    checksum wrong; 401 too when the timestamp is more than
//!    `RECORDING_UPLOAD_WINDOW` away from the balancer's clock);
//! 3. the checksum is claimed in the store for twice the window (Redis
//!    `SET NX`, so across API replicas): a request seen before is a replay
//!    (409);
//! 4. an archive of the same name and digest received in the last day is
//!    answered 200 at once (a retry whose answer was lost), unread;
//! 5. the spool's file system must have room for the declared length plus
//!    `RECORDING_UPLOAD_MIN_FREE_MB` plus what the uploads this process is
//!    receiving still have to write (507 Insufficient Storage otherwise,
//!    which the upload script retries later with the archive kept). The
//!    room is claimed before the free space is read, so two uploads that
//!    each fit but not together are not both let in.
//!
//! The body then streams into `<spool>/.upload-<name>-<random>` (hidden, so
//! the importer skips it) through a 1 MiB buffer, hashed on the way, each
//! pause bounded by `HTTP_HEADER_READ_TIMEOUT`. Only when the length and
//! the digest match and the file is flushed to disk is it renamed to
//! `<spool>/<name>` (201): the importer never sees a partial archive. Any
//! failure, a dropped connection included, removes the temporary file; a
//! file system that fills up during the upload (`ENOSPC`, `EDQUOT`) is
//! answered 507 too, after the partial file is removed.
//! Concurrent uploads of one name each write their own temporary file; the
//! last rename wins, whole.

pub(crate) mod room;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, StatusCode};
use http_body_util::BodyExt as _;
use scalelite_core::Secret;
use scalelite_core::upload::{ContentHasher, Signed, valid_archive_name, valid_sha256_hex};
use scalelite_store::Store;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tracing::{info, warn};

use self::room::{Claim, PendingBytes};
use crate::body::declared_length;
use crate::state::AppState;

/// The route.
pub(crate) const ROUTE: &str = "/scalelite/upload/{name}";

/// `X-Scalelite-Server`: the uploading server's id or API URL.
pub const SERVER_HEADER: HeaderName = HeaderName::from_static("x-scalelite-server");
/// `X-Scalelite-Timestamp`: Unix seconds when the upload was signed.
pub const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static("x-scalelite-timestamp");
/// `X-Scalelite-Content-Sha256`: the archive's lower-case hex SHA-256.
pub const SHA256_HEADER: HeaderName = HeaderName::from_static("x-scalelite-content-sha256");
/// `X-Scalelite-Checksum`: see [`scalelite_core::upload`].
pub const CHECKSUM_HEADER: HeaderName = HeaderName::from_static("x-scalelite-checksum");

/// How long a received archive (name and digest) answers a retry with 200.
const RECEIVED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The write buffer: memory per upload stays near this whatever the size.
const BUFFER_BYTES: usize = 1024 * 1024;

/// Temporary files start with this (hidden from the importer).
const TEMP_PREFIX: &str = ".upload-";

/// A refusal: status and a short reason, as JSON `{"error": ...}`.
fn refuse(status: StatusCode, reason: &str) -> Response {
    (status, Json(json!({ "error": reason }))).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// The handler (see the module documentation).
pub(crate) async fn upload(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = &state.config.recordings;
    if !config.upload_enabled {
        return refuse(StatusCode::NOT_FOUND, "recording uploads are disabled (RECORDING_UPLOAD_ENABLED)");
    }
    if !valid_archive_name(&name) {
        return refuse(StatusCode::BAD_REQUEST, "the archive name must be <record id>.tar");
    }
    let Some(size) = declared_length(&headers) else {
        return refuse(StatusCode::LENGTH_REQUIRED, "Content-Length is required");
    };
    if size > config.upload_max_bytes {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "the archive is larger than RECORDING_UPLOAD_MAX_BYTES");
    }
    let (Some(server), Some(timestamp), Some(digest), Some(checksum)) = (
        header(&headers, &SERVER_HEADER),
        header(&headers, &TIMESTAMP_HEADER),
        header(&headers, &SHA256_HEADER),
        header(&headers, &CHECKSUM_HEADER),
    ) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "X-Scalelite-Server, -Timestamp, -Content-Sha256 and -Checksum are required",
        );
    };
    let Ok(timestamp) = timestamp.parse::<i64>() else {
        return refuse(StatusCode::UNAUTHORIZED, "X-Scalelite-Timestamp must be Unix seconds");
    };
    if !valid_sha256_hex(digest) {
        return refuse(StatusCode::BAD_REQUEST, "X-Scalelite-Content-Sha256 must be 64 lower-case hex digits");
    }
    let secret = match server_secret(state.store.as_ref(), server).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "unknown server"),
        Err(Lookup::Store(error)) => {
            warn!(%error, "recording upload: cannot read the servers");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
        Err(Lookup::Busy) => return refuse(StatusCode::SERVICE_UNAVAILABLE, "busy: try again"),
    };
    let signed = Signed { name: &name, server, size, content_sha256: digest, timestamp };
    if !signed.verify(&secret, checksum) {
        return refuse(StatusCode::UNAUTHORIZED, "checksum error");
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if now.abs_diff(timestamp) > config.upload_window.as_secs() {
        return refuse(StatusCode::UNAUTHORIZED, "the timestamp is outside RECORDING_UPLOAD_WINDOW");
    }
    let checksum = checksum.to_ascii_lowercase();
    match state.store.claim_upload_mark(&format!("nonce:{checksum}"), config.upload_window * 2).await {
        Ok(true) => {}
        Ok(false) => return refuse(StatusCode::CONFLICT, "this signed request was used already"),
        Err(error) => {
            warn!(%error, "recording upload: cannot record the checksum");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
    }
    let received = format!("received:{name}:{digest}");
    match state.store.upload_mark_exists(&received).await {
        Ok(true) => {
            info!(archive = %name, server, bytes = size, "recording upload: already received");
            return (StatusCode::OK, Json(json!({ "archive": name, "bytes": size, "status": "already received" })))
                .into_response();
        }
        Ok(false) => {}
        Err(error) => {
            warn!(%error, "recording upload: cannot read the received archives");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, "the store is unavailable");
        }
    }

    let spool = config.spool_dir.clone();
    let mut claim = match check_free_space(&spool, size, config.upload_min_free_bytes, &state.upload_pending).await {
        Ok(claim) => claim,
        Err(refusal) => {
            warn!(archive = %name, server, bytes = size, reason = %refusal, "recording upload refused: the spool is full");
            return (StatusCode::INSUFFICIENT_STORAGE, Json(json!({ "error": refusal }))).into_response();
        }
    };

    let started = Instant::now();
    let stall = state.config.edge.header_read_timeout;
    match receive(&spool, &name, size, digest, body, stall, &mut claim).await {
        Ok(()) => {}
        Err(Failure { status, reason }) => {
            warn!(archive = %name, server, bytes = size, reason, "recording upload refused");
            return refuse(status, reason);
        }
    }
    if let Err(error) = state.store.claim_upload_mark(&received, RECEIVED_TTL).await {
        // The archive is in the spool; a retry would only upload it again.
        warn!(%error, archive = %name, "recording upload: cannot remember the received archive");
    }
    let seconds = started.elapsed().as_secs_f64();
    info!(
        archive = %name,
        server,
        bytes = size,
        duration_ms = (seconds * 1000.0) as u64,
        mb_per_s = format_args!("{:.1}", size as f64 / 1e6 / seconds.max(1e-6)),
        "recording upload received"
    );
    (StatusCode::CREATED, Json(json!({ "archive": name, "bytes": size, "status": "received" }))).into_response()
}

/// Server look-ups by URL in progress at once, per process: each reads
/// every server, before the request is authenticated, so their number is
/// bounded (more answer 503, which the upload script retries).
static URL_LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Why a server's secret was not found.
enum Lookup {
    Store(scalelite_store::StoreError),
    Busy,
}

/// The secret of the server named by `X-Scalelite-Server`: an id (one
/// read), or an `http(s)://` API URL compared without trailing slashes (a
/// read of every server, at most [`URL_LOOKUPS`] at once).
async fn server_secret(store: &dyn Store, server: &str) -> Result<Option<Secret>, Lookup> {
    if server.starts_with("https://") || server.starts_with("http://") {
        let wanted = server.trim_end_matches('/');
        let _permit = URL_LOOKUPS.try_acquire().map_err(|_| Lookup::Busy)?;
        let servers = store.servers().await.map_err(Lookup::Store)?;
        return Ok(servers.into_iter().find(|s| s.url.trim_end_matches('/') == wanted).map(|s| s.secret));
    }
    Ok(store.server(&scalelite_core::ServerId::new(server)).await.map_err(Lookup::Store)?.map(|s| s.secret))
}

/// Bytes as whole MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

/// Bytes available to unprivileged writers on the file system of `dir`
/// (or of its nearest existing parent, when the spool is not created yet).
fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut probe = dir;
    loop {
        match rustix::fs::statvfs(probe) {
            Ok(stats) => return Ok(stats.f_bavail.saturating_mul(stats.f_frsize)),
            Err(rustix::io::Errno::NOENT) => match probe.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                _ => return Err(rustix::io::Errno::NOENT.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Claims room for an upload of `size` bytes into `spool`, or says why it
/// does not fit while keeping `reserve` bytes free beside what other
/// uploads of this process still have to write. The claim is taken before
/// the free space is read, so of two uploads that arrive together and do
/// not fit together at least one is refused. A file system whose free space
/// cannot be read is not refused here (a full one still fails the write,
/// answered 507 then).
async fn check_free_space<'a>(
    spool: &Path,
    size: u64,
    reserve: u64,
    pending: &'a PendingBytes,
) -> Result<Claim<'a>, String> {
    let (claim, others) = pending.claim(size);
    let dir = spool.to_owned();
    let available = match tokio::task::spawn_blocking(move || available_bytes(&dir)).await {
        Ok(Ok(available)) => available,
        Ok(Err(error)) => {
            warn!(%error, spool = %spool.display(), "recording upload: cannot read the spool's free space");
            return Ok(claim);
        }
        Err(error) => {
            warn!(%error, "recording upload: cannot read the spool's free space");
            return Ok(claim);
        }
    };
    if size.saturating_add(reserve).saturating_add(others) <= available {
        return Ok(claim);
    }
    let in_progress =
        if others > 0 { format!(", uploads in progress still write {} MiB", mib(others)) } else { String::new() };
    Err(format!(
        "insufficient storage: the spool has {} MiB free; this archive needs {} MiB{in_progress} and \
         RECORDING_UPLOAD_MIN_FREE_MB keeps {} MiB free; try again later",
        available / (1024 * 1024),
        mib(size),
        mib(reserve)
    ))
}

/// Why a body was not kept.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    reason: &'static str,
}

impl Failure {
    fn new(status: StatusCode, reason: &'static str) -> Self {
        Self { status, reason }
    }

    fn io(error: &std::io::Error, doing: &'static str) -> Self {
        warn!(%error, doing, "recording upload: file-system error");
        let full = [rustix::io::Errno::NOSPC, rustix::io::Errno::DQUOT].map(|e| Some(e.raw_os_error()));
        if full.contains(&error.raw_os_error()) {
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient storage: the spool filled up during the upload; try again later",
            );
        }
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, doing)
    }
}

/// A temporary file removed when dropped, unless kept.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Streams `body` into a temporary file of `spool`, checks it and renames
/// it to `<spool>/<name>`.
async fn receive(
    spool: &Path,
    name: &str,
    size: u64,
    digest: &str,
    body: Body,
    stall: Duration,
    claim: &mut Claim<'_>,
) -> Result<(), Failure> {
    tokio::fs::create_dir_all(spool).await.map_err(|e| Failure::io(&e, "cannot create the spool"))?;
    let suffix: u64 = rand::random();
    let temp_path = spool.join(format!("{TEMP_PREFIX}{name}-{suffix:016x}"));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp_path)
        .await
        .map_err(|e| Failure::io(&e, "cannot create a file in the spool"))?;
    let mut temp = TempFile { path: Some(temp_path.clone()) };
    let mut writer = tokio::io::BufWriter::with_capacity(BUFFER_BYTES, file);
    let mut hasher = ContentHasher::default();
    let mut written: u64 = 0;
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => return Err(Failure::new(StatusCode::REQUEST_TIMEOUT, "the body stalled")),
            Ok(Some(Err(_))) => return Err(Failure::new(StatusCode::BAD_REQUEST, "the body ended early")),
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        written += data.len() as u64;
        if written > size {
            return Err(Failure::new(StatusCode::BAD_REQUEST, "the body is longer than Content-Length"));
        }
        hasher.update(&data);
        writer.write_all(&data).await.map_err(|e| Failure::io(&e, "cannot write to the spool"))?;
        claim.written(data.len() as u64);
    }
    if written != size {
        return Err(Failure::new(StatusCode::BAD_REQUEST, "the body ended early"));
    }
    if hasher.finish() != digest {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the archive does not match X-Scalelite-Content-Sha256",
        ));
    }
    writer.flush().await.map_err(|e| Failure::io(&e, "cannot write to the spool"))?;
    let file = writer.into_inner();
    file.sync_all().await.map_err(|e| Failure::io(&e, "cannot flush the archive"))?;
    drop(file);
    let target = spool.join(name);
    tokio::fs::rename(&temp_path, &target).await.map_err(|e| Failure::io(&e, "cannot rename the archive"))?;
    temp.path = None;
    // The rename itself survives a crash once the directory is flushed.
    let dir = spool.to_owned();
    let _ = tokio::task::spawn_blocking(move || std::fs::File::open(dir).and_then(|d| d.sync_all())).await;
    Ok(())
}

/// Removes temporary files of uploads that died with a process (a
/// `.upload-` file untouched for an hour; live uploads write at least every
/// `HTTP_HEADER_READ_TIMEOUT`). Run once at start.
pub(crate) fn remove_stale_temp_files(spool: &Path) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    let stale = SystemTime::now() - Duration::from_secs(3600);
    for entry in entries.flatten() {
        let is_temp = entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
        let old = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < stale);
        if is_temp && old && std::fs::remove_file(entry.path()).is_ok() {
            info!(file = %entry.path().display(), "removed the temporary file of an interrupted upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn uploads_in_progress_keep_their_room_until_written_or_gone() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingBytes::default();
        let available = available_bytes(dir.path()).unwrap();
        // Each fits alone, two do not fit together (even if the disk frees
        // some space meanwhile).
        let size = available / 10 * 6;
        let mut first = check_free_space(dir.path(), size, 0, &pending).await.expect("the first upload fits");
        let refusal = check_free_space(dir.path(), size, 0, &pending).await.err().expect("the second is refused");
        assert!(refusal.contains("uploads in progress still write"), "{refusal}");
        assert_eq!(pending.outstanding(), size, "a refused upload claims nothing");
        // As the first writes, its claim shrinks; a claim never goes below zero.
        first.written(size / 2);
        assert_eq!(pending.outstanding(), size - size / 2);
        first.written(size);
        assert_eq!(pending.outstanding(), 0);
        drop(first);
        assert_eq!(pending.outstanding(), 0);
        // A finished or failed upload gives its room back.
        let second = check_free_space(dir.path(), size, 0, &pending).await.expect("room again");
        drop(second);
        assert_eq!(pending.outstanding(), 0);
    }
}
