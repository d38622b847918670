//! The public edge under hostile input (issue 12): spliced checksums,
//! oversized and numerous parameters, bodies read before authentication,
//! slow and idle connections. Each test asserts what a client sees; no
//! timing is asserted (the measured figures are in docs/SECURITY.md).

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_tests::{Reply, TestApp, eventually_with, read_http_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{assert_failed, create};

/// Waits (bounded) until the server closes `stream`: reads until EOF.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 4096];
    let reading = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, reading).await.is_ok()
}

/// Reads one HTTP response (head and body), within `within`.
async fn response_head(stream: &mut TcpStream, within: Duration) -> String {
    let (_, text) = tokio::time::timeout(within, read_http_response(stream)).await.expect("a response in time");
    text
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_spliced_join_url_is_refused() {
    let app = TestApp::start().await;
    create(&app, "room-1").await;
    create(&app, "room-1-grp").await;
    let client = app.client();
    // A participant holds one signed join URL of the breakout room, as a
    // guest; cutting text out with extra `checksum=` copies would take them
    // into room-1 without `guest`.
    let signed = "fullName=Eve&meetingID=room-1-grp&password=ap&guest=true";
    let x = client.checksum("join", signed);
    let honest = client.raw_get(&format!("{}?{signed}&checksum={x}", client.call_url("join"))).await;
    assert_eq!(honest.status, 302, "{}", honest.body);
    let spliced = format!(
        "{}?fullName=Eve&meetingID=room-1&checksum={x}-grp&password=ap&&checksum={x}guest=true&checksum={x}",
        client.call_url("join")
    );
    let reply = client.raw_get(&spliced).await;
    assert_failed(&reply, "checksumError");
    assert!(reply.location.is_none());
    // Only the honest join reached a server.
    let joins: usize = app.fleet.iter().map(|server| server.call_count("join")).sum();
    assert_eq!(joins, 0, "a join URL is followed by the browser, not by the balancer");
    assert!(honest.location.unwrap().contains("meetingID=room-1-grp"));
}

#[tokio::test]
async fn too_many_parameters_are_refused_before_the_checksum() {
    let app = TestApp::builder().env("MAX_REQUEST_PARAMS", "50").start().await;
    let client = app.client();
    // Item 2's quadratic input, as nginx's default limits let it through.
    let query = format!("{}checksum=0", "a&".repeat(3500));
    let reply = client.raw_get(&format!("{}?{query}", client.call_url("getMeetings"))).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some("internalError"));
    assert_eq!(reply.message().as_deref(), Some("The request has too many parameters."));
    // Query and form body count together.
    let url = format!("{}?{}checksum={}", client.call_url("getMeetings"), "a&".repeat(30), "0".repeat(40));
    let body = Bytes::from("b&".repeat(30));
    let reply = client.send(Method::POST, &url, Some("application/x-www-form-urlencoded"), body).await.expect("reply");
    assert_eq!(reply.status, 400, "{}", reply.body);
    // A signed create with many (but allowed) parameters still works.
    let params: Vec<(String, String)> = (0..45).map(|i| (format!("meta_k{i}"), "v".to_owned())).collect();
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend([("meetingID", "many"), ("name", "Many")]);
    assert!(client.get("create", &pairs).await.is_success());
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_unread() {
    let app = TestApp::builder().env("MAX_REQUEST_BODY_BYTES", "1024").start().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Declares 1 GiB and sends nothing of it: the answer comes at once.
    let head = "POST /bigbluebutton/api/getMeetings HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1073741824\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let reply = response_head(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    assert!(reply.contains("The request body is too large."), "{reply}");
}

#[tokio::test]
async fn a_checksum_that_matches_nothing_is_refused_without_reading_the_body() {
    let app = TestApp::start().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /bigbluebutton/api/getMeetings?checksum=0 HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nb&b";
    stream.write_all(head.as_bytes()).await.unwrap();
    let reply = response_head(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("<messageKey>checksumError</messageKey>"), "{reply}");
}

#[tokio::test]
async fn a_query_signed_call_is_answered_before_its_body_arrives() {
    let app = TestApp::start().await;
    let client = app.client();
    // A wrong checksum over an XML body: refused on the query alone.
    let url = format!("{}?meetingID=m&checksum={}", client.call_url("insertDocument"), "0".repeat(40));
    let target = url.split_once("127.0.0.1").unwrap().1.split_once('/').unwrap().1;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /{target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/xml\r\nContent-Length: 10000000\r\n\r\n<modules>"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let reply = response_head(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    assert!(reply.contains("<messageKey>checksumError</messageKey>"), "{reply}");
}

#[tokio::test]
async fn unauthenticated_bodies_share_one_budget_and_joins_keep_answering() {
    let app = TestApp::builder().env("MAX_UNAUTHENTICATED_BODY_BYTES", "1000").start().await;
    create(&app, "m").await;
    let client = app.client();
    // One request declares 800 bytes and sends half: it holds 800 of the
    // 1000 bytes while it waits for the rest.
    let mut holder = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /bigbluebutton/api/getMeetings HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 800\r\n\r\n";
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&[b'a'; 400]).await.unwrap();
    // Once the first holds its share, a second one is refused at once.
    eventually_with(Duration::from_secs(10), "the holder taking the budget", || async {
        app.state.body_budget.available() == 200
    })
    .await;
    let url = format!("{}?checksum={}", client.call_url("getMeetings"), "0".repeat(40));
    let body = Bytes::from(vec![b'b'; 800]);
    let refused =
        client.send(Method::POST, &url, Some("application/x-www-form-urlencoded"), body).await.expect("reply");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.message_key().as_deref(), Some("internalError"));
    // Joins (no body) never wait for the budget.
    let join = client.get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    // The holder finishes; its budget comes back.
    holder.write_all(&[b'a'; 400]).await.unwrap();
    let reply = response_head(&mut holder, Duration::from_secs(10)).await;
    assert!(reply.contains("checksumError"), "{reply}");
    let body = Bytes::from(vec![b'b'; 800]);
    let reply: Reply =
        client.send(Method::POST, &url, Some("application/x-www-form-urlencoded"), body).await.expect("reply");
    assert_failed(&reply, "checksumError");
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed_while_joins_keep_answering() {
    let app = TestApp::builder().env("HTTP_IDLE_TIMEOUT", "0.5").env("HTTP_HEADER_READ_TIMEOUT", "0.5").start().await;
    create(&app, "m").await;
    // Connections that never send anything, one that sends half a head,
    // and a keep-alive connection after its request.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(response_head(&mut kept, Duration::from_secs(10)).await.starts_with("HTTP/1.1 200"));
    let join = app.client().get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
    assert_eq!(join.status, 302);
    for stream in idle.iter_mut().chain([&mut slow, &mut kept]) {
        assert!(closed_by_server(stream, Duration::from_secs(10)).await, "a connection stayed open");
    }
    let join = app.client().get("join", &[("meetingID", "m"), ("fullName", "B")]).await;
    assert_eq!(join.status, 302);
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let app = TestApp::builder().env("HTTP_MAX_CONNECTIONS", "3").env("HTTP_IDLE_TIMEOUT", "60").start().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(response_head(&mut stream, Duration::from_secs(10)).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // The fourth is accepted by the kernel but not served while three are open.
    let mut fourth = TcpStream::connect(app.addr).await.unwrap();
    fourth.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), fourth.read(&mut byte)).await;
    assert!(early.is_err(), "served beyond HTTP_MAX_CONNECTIONS");
    drop(held.pop());
    assert!(response_head(&mut fourth, Duration::from_secs(10)).await.contains("200 OK"));
}

#[tokio::test]
async fn an_oversized_head_is_refused() {
    let app = TestApp::builder().env("HTTP_MAX_HEADER_BYTES", "8192").start().await;
    let client = app.client();
    let reply =
        client.raw_get(&format!("{}?meetingID={}", client.call_url("getMeetingInfo"), "x".repeat(10_000))).await;
    assert_eq!(reply.status, 431, "{}", reply.body);
    // Heads below the limit are served.
    let reply = client.raw_get(&format!("{}?meetingID={}", client.call_url("getMeetingInfo"), "x".repeat(4_000))).await;
    assert_failed(&reply, "checksumError");
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_one() {
    // Idle shorter than the header-read timeout: after its request, a
    // connection must close on the idle deadline, not on the (later)
    // deadline its first head had.
    let app = TestApp::builder().env("HTTP_IDLE_TIMEOUT", "0.3").env("HTTP_HEADER_READ_TIMEOUT", "60").start().await;
    let mut kept = TcpStream::connect(app.addr).await.unwrap();
    kept.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(response_head(&mut kept, Duration::from_secs(10)).await.starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut kept, Duration::from_secs(20)).await, "kept open past the idle timeout");
}
