//! Calls to BBB servers made on behalf of a request: where a server's calls
//! go ([`target`]), and [`call`], which counts every failure by call and
//! kind and logs it with the server's id and its cause.

use bytes::Bytes;
use scalelite_bbb_client::{BbbClient, CallError, Reply, Target};
use scalelite_store::Server;
use tracing::{info, warn};

use crate::metrics::ApiMetrics;

/// Where calls for a server go.
pub(crate) fn target(server: &Server) -> Target<'_> {
    Target { url: &server.url, secret: &server.secret, online: server.online }
}

/// Sends `call` with the encoded `query` (and an XML body, if any) to
/// `server` ([`BbbClient::call`]: short timeouts for a server marked
/// offline). A failure is counted in `upstream_errors` and logged: a
/// server that could not be reached or answered no BBB document as a
/// warning, a `FAILED` answer (a meeting BBB does not know, say) as
/// information. The log line names the server and the call and gives the
/// cause, never the URL (it holds the checksum).
pub(crate) async fn call(
    bbb: &BbbClient,
    metrics: &ApiMetrics,
    server: &Server,
    call: &str,
    query: &str,
    xml_body: Option<Bytes>,
) -> Result<Reply, CallError> {
    let result = bbb.call(&target(server), call, query, xml_body).await;
    if let Err(error) = &result {
        metrics.upstream_error(call, error);
        match error {
            CallError::Failed { .. } => info!(server.id = %server.id, call, %error, "BBB server answered FAILED"),
            _ => warn!(server.id = %server.id, call, %error, "BBB call failed"),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use scalelite_bbb_client::Timeouts;
    use scalelite_core::{Algorithm, ServerId};

    use super::*;
    use crate::metrics::UpstreamLabels;

    /// Log output, kept for the test to read.
    #[derive(Clone, Debug, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_call_is_counted_and_logged_with_its_server_and_cause() {
        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/bigbluebutton/api", closed.local_addr().unwrap());
        drop(closed);
        let hash = HashMap::from([
            ("url".to_owned(), url),
            ("secret".to_owned(), "the-server-secret".to_owned()),
            ("online".to_owned(), "true".to_owned()),
        ]);
        let server = Server::from_hash(ServerId::from("bbb-7"), &hash, true).unwrap();
        let timeouts = Timeouts { connect: Duration::from_secs(5), response: Duration::from_secs(5) };
        let bbb = BbbClient::new(timeouts, Algorithm::Sha256);
        let metrics = ApiMetrics::new();
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let _logging = tracing::subscriber::set_default(subscriber);

        let result = call(&bbb, &metrics, &server, "getMeetingInfo", "meetingID=m", None).await;

        assert!(matches!(result, Err(CallError::Transport(_))), "{result:?}");
        let labels = UpstreamLabels { call: "getMeetingInfo".into(), kind: "transport".into() };
        assert_eq!(metrics.upstream_errors.get_or_create(&labels).get(), 1);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log.lines().find(|line| line.contains("BBB call failed")).unwrap_or_else(|| panic!("{log}"));
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains("server.id=bbb-7"), "{line}");
        assert!(line.contains("getMeetingInfo"), "{line}");
        assert!(line.contains("transport error"), "{line}");
        assert!(!line.contains("checksum") && !line.contains("the-server-secret"), "{line}");
    }
}
