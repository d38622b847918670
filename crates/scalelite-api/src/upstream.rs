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
