//! Bad input at the relay's HTTP entry: each gets a clear 4xx (with per-document errors
//! where documents are involved), nothing else is lost, and the relay keeps serving
//! others — deep JSON, invalid UTF-8, 10,000 documents in one batch, wrong ids, huge
//! header values, a body over `--max-body` (refused before it is read whole), a
//! slow-loris client and a connection flood beyond `--max-connections`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Relay, read_lines, segment, test_config};
use hyper::http::Method;
use meshray_relay::{Config, SinkKind};
use meshray_test_support::http::{HttpResponse, request};
use meshray_test_support::ids::{new_xray_trace_id, now_secs};
use meshray_test_support::run_dir::RunDir;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A relay writing to a file sink in `dir`.
async fn file_relay(dir: &RunDir, config: Config) -> Relay {
    Relay::start(Config {
        sink: SinkKind::File(dir.path().join("out.jsonl")),
        ..config
    })
    .await
}

/// The relay still answers a good batch: it stayed up and serves others.
async fn still_serves(relay: &Relay) {
    let response = relay
        .post_segments(&json!([segment(
            "productpage",
            &new_xray_trace_id(),
            now_secs()
        )]))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json().unwrap()["accepted"], 1);
}

/// The `error` member of a JSON error answer.
fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

/// Reads what the server sends until it closes or `limit` passes; `None` on timeout.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    match read {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

/// Deep JSON, invalid UTF-8 and wrong ids: 400 for a body that cannot be read, and
/// per-document reasons for documents that can — the good ones in the same batch
/// are delivered. A document nested deeper than the relay's limit is such a document:
/// refused on its own, for its depth, without sinking its batch (or the relay's stack).
#[tokio::test]
async fn malformed_bodies_and_documents_get_clear_errors() {
    let dir = RunDir::new("bad-input-bodies").unwrap();
    let relay = file_relay(&dir, test_config()).await;
    let too_deep = |answer: &HttpResponse, index: u64| {
        assert_eq!(answer.status, 200, "{}", answer.text());
        let report = answer.json().unwrap();
        assert_eq!(report["accepted"], 1, "{report}");
        let rejected = report["rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 1, "{report}");
        assert_eq!(rejected[0]["index"], index, "{report}");
        assert!(
            error_of(&rejected[0])
                .contains("more than 100 levels deep (the relay's nesting limit)"),
            "{report}"
        );
    };

    let deep_trace = new_xray_trace_id();
    let deep_good = segment("details", &deep_trace, now_secs());
    let deep = format!(
        "[{deep_good},{}{}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let answer = request(relay.addr, Method::POST, "/v1/segments", deep.as_bytes())
        .await
        .unwrap();
    too_deep(&answer, 1);

    let mut deep_document = String::from(r#"[{"name":"x","metadata":"#);
    deep_document.push_str(&r#"{"a":"#.repeat(10_000));
    deep_document.push('1');
    deep_document.push_str(&"}".repeat(10_000));
    deep_document.push_str(&format!("}},{deep_good}]"));
    let answer = request(
        relay.addr,
        Method::POST,
        "/v1/segments",
        deep_document.as_bytes(),
    )
    .await
    .unwrap();
    too_deep(&answer, 0);

    let mut invalid_utf8 = br#"[{"name":"caf"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#"","id":"1"}]"#);
    let answer = request(relay.addr, Method::POST, "/v1/segments", &invalid_utf8)
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(error_of(&answer.json().unwrap()).contains("not valid JSON"));

    let trace_id = new_xray_trace_id();
    let good = segment("productpage", &trace_id, now_secs());
    let mut wrong_trace = good.clone();
    wrong_trace["trace_id"] = json!("1-nothex-000000000000000000000000");
    let mut wrong_id = segment("reviews", &trace_id, now_secs());
    wrong_id["id"] = json!("not-16-hex");
    let mut wrong_parent = segment("ratings", &trace_id, now_secs());
    wrong_parent["parent_id"] = json!("ZZZZZZZZZZZZZZZZ");
    let answer = relay
        .post_segments(&json!([wrong_trace, good, wrong_id, wrong_parent]))
        .await;
    assert_eq!(answer.status, 200);
    let report = answer.json().unwrap();
    assert_eq!(report["accepted"], 1, "{report}");
    let rejected: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 2, 3]);
    assert!(rejected[0].1.contains("trace_id"), "{rejected:?}");
    assert!(rejected[1].1.contains("id"), "{rejected:?}");
    assert!(rejected[2].1.contains("parent_id"), "{rejected:?}");

    still_serves(&relay).await;
    relay.stop().await.unwrap();
    let written = read_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        written.len(),
        4,
        "the good document of each of the three bad batches and the last one"
    );
    assert!(written.iter().any(|d| d["id"] == good["id"]));
    assert_eq!(
        written
            .iter()
            .filter(|d| d["id"] == deep_good["id"])
            .count(),
        2,
        "the good document next to each too-deep one"
    );
}

/// 10,000 documents in one batch: taken whole when the queue has room; refused whole
/// with 413 (never half-queued) when the batch exceeds the whole queue.
#[tokio::test]
async fn ten_thousand_documents_in_one_batch() {
    let dir = RunDir::new("bad-input-10k").unwrap();
    let trace_id = new_xray_trace_id();
    let documents: Vec<Value> = (0..10_000)
        .map(|_| segment("productpage", &trace_id, now_secs()))
        .collect();
    let body = json!(documents);

    let roomy = file_relay(
        &dir,
        Config {
            queue_capacity: 20_000,
            ..test_config()
        },
    )
    .await;
    let answer = roomy.post_segments(&body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json().unwrap()["accepted"], 10_000);
    roomy.stop().await.unwrap();
    assert_eq!(read_lines(&dir.path().join("out.jsonl")).len(), 10_000);

    let small = Relay::start(Config {
        sink: SinkKind::File(dir.path().join("small.jsonl")),
        queue_capacity: 1_000,
        ..test_config()
    })
    .await;
    let answer = small.post_segments(&body).await;
    assert_eq!(answer.status, 413);
    assert!(error_of(&answer.json().unwrap()).contains("send smaller batches"));
    assert_eq!(small.metric("meshray_relay_queue_depth").await, 0.0);
    still_serves(&small).await;
    small.stop().await.unwrap();
}

/// A body over `--max-body` is refused without being read whole: with a declared
/// `Content-Length` the 413 comes before any of the body is sent; a chunked body is
/// cut off at the limit, with the rest still unsent.
#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let dir = RunDir::new("bad-input-max-body").unwrap();
    let relay = file_relay(
        &dir,
        Config {
            max_body_bytes: 64 * 1024,
            ..test_config()
        },
    )
    .await;

    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = "POST /v1/segments HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n\
                content-length: 1073741824\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let answer = answer.expect("no answer to a 1 GiB Content-Length before its body");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = "POST /v1/segments HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 16 * 1024];
    let mut sent = 0;
    let mut answered = String::new();
    // Send up to 1 MiB in 16 KiB chunks, reading between them: the answer must come
    // once the limit is passed, long before the end.
    for _ in 0..64 {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
        let mut buffer = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await
            && n > 0
        {
            answered = String::from_utf8_lossy(&buffer[..n]).into_owned();
            break;
        }
    }
    assert!(
        answered.starts_with("HTTP/1.1 413"),
        "after {sent} bytes: {answered:?}"
    );
    assert!(
        sent < 1024 * 1024,
        "the relay read the whole body ({sent} bytes)"
    );
    still_serves(&relay).await;
    relay.stop().await.unwrap();
}

/// Huge header values get 431 from the HTTP layer, and the relay serves on.
#[tokio::test]
async fn huge_header_values_are_refused() {
    let dir = RunDir::new("bad-input-headers").unwrap();
    let relay = file_relay(&dir, test_config()).await;
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = format!(
        "POST /v1/segments HTTP/1.1\r\nhost: relay\r\nx-huge: {}\r\ncontent-length: 2\r\n\r\n[]",
        "a".repeat(1024 * 1024)
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .expect("no answer to a 1 MiB header");
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    still_serves(&relay).await;
    relay.stop().await.unwrap();
}

/// A slow-loris client (headers one byte at a time, never finished) and a flood of
/// idle connections beyond `--max-connections`: each is closed after
/// `--client-timeout`, so their slots come free and a normal client is served; the
/// relay stays up.
#[tokio::test]
async fn slow_loris_and_connection_flood_do_not_lock_others_out() {
    let dir = RunDir::new("bad-input-flood").unwrap();
    let max_connections = 8;
    let relay = file_relay(
        &dir,
        Config {
            max_connections,
            client_timeout: Duration::from_secs(1),
            ..test_config()
        },
    )
    .await;

    let mut loris = TcpStream::connect(relay.addr).await.unwrap();
    let dribble = tokio::spawn(async move {
        for byte in b"POST /v1/segments HTTP/1.1\r\nhost: relay\r\nx-slow: "
            .iter()
            .cycle()
            .take(200)
        {
            if loris.write_all(&[*byte]).await.is_err() {
                return true; // closed by the relay
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    let flood: Vec<TcpStream> = futures_connect(relay.addr, 3 * max_connections).await;

    // With every slot held, a normal request waits; once the idle ones are closed it is
    // served. Bounded by the client timeout, not by the flood.
    let started = Instant::now();
    still_serves(&relay).await;
    let waited = started.elapsed();
    eprintln!(
        "drill flood: served after {waited:?} with {} idle connections",
        flood.len()
    );
    assert!(
        dribble.await.unwrap(),
        "the slow-loris connection was never closed"
    );
    drop(flood);
    relay.stop().await.unwrap();
}

/// Opens `n` TCP connections that never send anything.
async fn futures_connect(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    streams
}

/// Bad datagrams on the daemon UDP port — no header, a wrong header, JSON that is not a
/// document, invalid UTF-8, one over 64 KiB — are each dropped and counted; the good
/// datagram among them is delivered.
#[tokio::test]
async fn bad_daemon_datagrams_are_counted_and_dropped() {
    let dir = RunDir::new("bad-input-udp").unwrap();
    let out = dir.path().join("out.jsonl");
    let config = Config {
        sink: SinkKind::File(out.clone()),
        ..test_config()
    };
    let (relay, udp) = Relay::start_with_daemon(config, &dir.path().join("addr")).await;
    let header = r#"{"format":"json","version":1}"#;
    let good = segment("checkout", &new_xray_trace_id(), now_secs());
    let mut invalid_utf8 = format!("{header}\n").into_bytes();
    invalid_utf8.extend_from_slice(&[b'{', 0xff, b'}']);
    let datagrams: Vec<Vec<u8>> = vec![
        good.to_string().into_bytes(),
        format!("{{\"format\":\"protobuf\"}}\n{good}").into_bytes(),
        format!("{header}\n[1,2,3]").into_bytes(),
        format!("{header}\n{{\"name\":\"no ids\"}}").into_bytes(),
        invalid_utf8,
        format!("{header}\n{}", "x".repeat(70_000)).into_bytes(),
        format!("{header}\n{good}").into_bytes(),
    ];
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for datagram in &datagrams {
        // The 70 kB one may be refused by the kernel already; either way it is not read.
        let _ = socket.send_to(datagram, udp).await;
    }
    meshray_test_support::wait::wait_until(
        "the datagrams counted",
        Duration::from_secs(10),
        || async { relay.metric("meshray_relay_documents_received_total").await >= 6.0 },
    )
    .await
    .unwrap();
    let invalid = relay
        .metric("meshray_relay_documents_rejected_total{reason=\"invalid\"}")
        .await;
    assert!((5.0..=6.0).contains(&invalid), "rejected {invalid}");
    assert_eq!(
        relay.metric("meshray_relay_documents_accepted_total").await,
        1.0
    );
    still_serves(&relay).await;
    relay.stop().await.unwrap();
    let written = read_lines(&out);
    assert_eq!(written.len(), 2);
    assert!(written.iter().any(|d| d["id"] == good["id"]));
}
