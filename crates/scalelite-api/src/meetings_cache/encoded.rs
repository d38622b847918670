//! A rendered getMeetings reply and its gzip encoding.
//!
//! At 1,000 meetings the reply is about 1.5 MB of XML, which gzip shrinks
//! about twentyfold. A client that says `Accept-Encoding: gzip` (Ruby's
//! `Net::HTTP` does by default, curl with `--compressed`) gets the encoded
//! copy, made once per rendered reply. A request never waits for it: the
//! first such call after a change starts the compression behind itself and
//! is answered uncompressed, the next ones get the encoded bytes. At most
//! one compression runs at a time in the process, so a stream of creates
//! that keeps changing the reply costs at most one blocking thread's time.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// Replies shorter than this go out as they are: the encoding would save a
/// few hundred bytes at the cost of a thread hop.
const MIN_ENCODED_LEN: usize = 4096;

/// A reply as rendered, and its gzip encoding once made.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The XML document.
    pub(crate) body: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Reply {
    pub(crate) fn new(body: Bytes) -> Arc<Self> {
        Arc::new(Self { body, gzip: OnceLock::new() })
    }

    /// Makes the gzip encoding now, unless the reply is too short to be
    /// worth it or it exists already. Blocking: a megabyte takes a few
    /// milliseconds.
    pub(crate) fn compress(&self) {
        if self.body.len() < MIN_ENCODED_LEN || self.gzip.get().is_some() {
            return;
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(self.body.len() / 8), Compression::fast());
        // Writing into a Vec cannot fail.
        if encoder.write_all(&self.body).is_ok()
            && let Ok(encoded) = encoder.finish()
        {
            let _ = self.gzip.set(Bytes::from(encoded));
        }
    }
}

/// Hands out the encoded replies and runs their compression, one at a time.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// A compression is running.
    busy: Arc<AtomicBool>,
    /// A client asked for gzip since the process started: refreshes then
    /// compress their reply before it is installed.
    wanted: AtomicBool,
}

/// Releases [`Encoder::busy`] when the compression ends, also by a panic.
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Encoder {
    /// Whether refreshes should compress their reply ahead of the calls.
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// The bytes to send for `reply` and whether they are gzip-encoded.
    /// With `gzip` accepted and no encoding made yet, starts one in the
    /// background (unless one is running) and answers with the XML.
    /// Call inside a Tokio runtime.
    pub(crate) fn bytes(&self, reply: &Arc<Reply>, gzip: bool) -> (Bytes, bool) {
        if !gzip || reply.body.len() < MIN_ENCODED_LEN {
            return (reply.body.clone(), false);
        }
        if !self.wanted.load(Ordering::Relaxed) {
            self.wanted.store(true, Ordering::Relaxed);
        }
        if let Some(encoded) = reply.gzip.get() {
            return (encoded.clone(), true);
        }
        if self.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            let busy = Busy(Arc::clone(&self.busy));
            let reply = Arc::clone(reply);
            drop(tokio::task::spawn_blocking(move || {
                let _busy = busy;
                reply.compress();
            }));
        }
        (reply.body.clone(), false)
    }
}

/// Whether the request's `Accept-Encoding` takes gzip: a `gzip` (or
/// `x-gzip`, or `*` when gzip is not named) coding whose `q` is not zero.
/// Linear in the header's length; anything unreadable means no.
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let accepted = parts.all(|param| {
                let param = param.trim();
                let Some(q) = param.strip_prefix("q=").or_else(|| param.strip_prefix("Q=")) else {
                    return true;
                };
                q.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                return accepted;
            }
            if coding == "*" {
                star = accepted;
            }
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn accept_encoding_is_read_as_http_says() {
        assert!(accepts_gzip(&headers(&["gzip"])));
        assert!(accepts_gzip(&headers(&["gzip;q=1.0,deflate;q=0.6,identity;q=0.3"])));
        assert!(accepts_gzip(&headers(&["br", "GZIP ; q=0.5"])));
        assert!(accepts_gzip(&headers(&["x-gzip"])));
        assert!(accepts_gzip(&headers(&["*"])));
        assert!(!accepts_gzip(&headers(&[])));
        assert!(!accepts_gzip(&headers(&["identity"])));
        assert!(!accepts_gzip(&headers(&["deflate, br"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=0"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=0.000"])));
        assert!(!accepts_gzip(&headers(&["*;q=1, gzip;q=0"])));
        assert!(!accepts_gzip(&headers(&["gzip;q=banana"])));
        assert!(!accepts_gzip(&headers(&["*;q=0"])));
    }

    #[test]
    fn the_encoding_inflates_to_the_reply() {
        let xml = "<meeting><meetingID>room</meetingID></meeting>\n".repeat(500);
        let reply = Reply::new(Bytes::from(xml.clone()));
        reply.compress();
        let encoded = reply.gzip.get().expect("a long reply is encoded");
        assert!(encoded.len() * 10 < xml.len(), "{} bytes encoded from {}", encoded.len(), xml.len());
        let mut inflated = String::new();
        GzDecoder::new(&encoded[..]).read_to_string(&mut inflated).unwrap();
        assert_eq!(inflated, xml);

        let short = Reply::new(Bytes::from_static(b"<response/>"));
        short.compress();
        assert!(short.gzip.get().is_none());
    }

    #[tokio::test]
    async fn a_call_never_waits_for_the_encoding_and_the_next_gets_it() {
        let encoder = Encoder::default();
        let reply = Reply::new(Bytes::from("<meeting/>\n".repeat(1000)));
        assert_eq!(encoder.bytes(&reply, false), (reply.body.clone(), false));
        assert!(!encoder.wanted());
        let (first, gzipped) = encoder.bytes(&reply, true);
        assert!(!gzipped);
        assert_eq!(first, reply.body);
        assert!(encoder.wanted());
        // The compression runs behind the call on the blocking pool: yield
        // until it lands (a few milliseconds).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (bytes, gzipped) = encoder.bytes(&reply, true);
            if gzipped {
                assert!(bytes.len() < reply.body.len());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the encoding never came");
            tokio::task::yield_now().await;
        }
        // The compression's thread releases the slot right after it stored
        // the encoding.
        while encoder.busy.load(Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "the compression slot was never released");
            tokio::task::yield_now().await;
        }
    }
}
