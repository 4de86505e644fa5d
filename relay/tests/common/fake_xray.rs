//! A scripted X-Ray `PutTraceSegments` endpoint in this process, for the retry tests
//! and the reliability drills: answers from a script, can be taken down and brought
//! back, and records every request's documents with the answer it got.
//!
//! Like X-Ray, it checks each request's SigV4 signature (the test credentials of
//! [`meshray_test_support::moto`]) over the bytes received, and answers 403
//! `InvalidSignatureException` when it does not match: the relay writes the request body
//! itself, so this is where a body swapped after signing would show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meshray_test_support::http::LocalServer;
use meshray_test_support::moto;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body (an `__type` member also becomes `x-amzn-errortype`).
    Status(u16, Value),
    /// 200 listing the first half of the request's documents (at least one) as
    /// unprocessed with this error code.
    UnprocessHalf(&'static str),
    /// Takes the documents (they count as accepted) but answers only after this long:
    /// longer than the relay's operation timeout, it is the at-least-once case.
    Late(std::time::Duration),
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The documents, parsed.
    pub documents: Vec<Value>,
    /// The status answered.
    pub status: u16,
    /// The documents answered as unprocessed: id and error code.
    pub unprocessed: Vec<(String, &'static str)>,
    /// Whether the answer came after the relay's operation timeout ([`Answer::Late`]).
    pub late: bool,
}

/// A request as it arrived, for the signature check.
struct Received {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    /// Ids of the documents X-Ray took from this request.
    pub fn accepted_ids(&self) -> Vec<String> {
        if self.status != 200 {
            return Vec::new();
        }
        self.documents
            .iter()
            .filter_map(|d| d["id"].as_str())
            .filter(|id| !self.unprocessed.iter().any(|(u, _)| u == id))
            .map(str::to_owned)
            .collect()
    }
}

/// What the handler shares.
#[derive(Debug, Default)]
struct State {
    /// Answers still to give, in order; the last one repeats when `repeat_last`.
    script: Mutex<VecDeque<Answer>>,
    /// Whether the last scripted answer repeats (else: 200, all processed).
    repeat_last: bool,
    /// While set, every request gets 503 `ServiceUnavailable`.
    down: AtomicBool,
    /// Every request, in arrival order.
    seen: Mutex<Vec<Seen>>,
    /// Why each request refused for its signature was refused.
    bad_signatures: Mutex<Vec<String>>,
}

/// The fake endpoint.
pub struct FakeXray {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Shared with the handler.
    state: Arc<State>,
    /// Serves until dropped.
    _server: LocalServer,
}

impl FakeXray {
    /// Serves `script` in order; the last entry repeats.
    pub async fn start(script: Vec<(u16, Value)>) -> FakeXray {
        let script = script
            .into_iter()
            .map(|(s, b)| Answer::Status(s, b))
            .collect();
        Self::serve(script, true).await
    }

    /// Serves `script` in order, then accepts everything.
    pub async fn scripted(script: Vec<Answer>) -> FakeXray {
        Self::serve(script, false).await
    }

    /// Starts the server.
    async fn serve(script: Vec<Answer>, repeat_last: bool) -> FakeXray {
        let state = Arc::new(State {
            script: Mutex::new(VecDeque::from(script)),
            repeat_last,
            ..State::default()
        });
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move {
                    let received = Received {
                        method,
                        uri,
                        headers,
                        body,
                    };
                    if let Err(problem) = received.check_signature() {
                        state.bad_signatures.lock().unwrap().push(problem.clone());
                        return invalid_signature(&problem);
                    }
                    let body = std::str::from_utf8(&received.body).unwrap();
                    let (response, delay) = state.answer(body);
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    response
                }
            },
        );
        let server = LocalServer::start("fake X-Ray", app).await.unwrap();
        FakeXray {
            endpoint: format!("http://{}", server.addr()),
            state,
            _server: server,
        }
    }

    /// Takes X-Ray down (`true`: every call gets 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Why each request with a wrong SigV4 signature was refused (403), in order.
    pub fn bad_signatures(&self) -> Vec<String> {
        self.state.bad_signatures.lock().unwrap().clone()
    }

    /// Every request so far (with a valid signature).
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The ids sent in each request.
    pub fn sent_ids(&self) -> Vec<Vec<String>> {
        self.seen()
            .iter()
            .map(|seen| {
                seen.documents
                    .iter()
                    .map(|d| d["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }

    /// How many times X-Ray took each document id.
    pub fn accepted_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for seen in self.seen() {
            for id in seen.accepted_ids() {
                *counts.entry(id).or_default() += 1;
            }
        }
        counts
    }

    /// Documents the relay must send again: those of refused and late calls, and those
    /// listed as unprocessed with a code not in `final_codes` — what its `retried`
    /// counter shows when nothing was given up.
    pub fn retry_worthy(&self, final_codes: &[&str]) -> usize {
        self.seen()
            .iter()
            .map(|seen| {
                if seen.status != 200 || seen.late {
                    seen.documents.len()
                } else {
                    let again = |(_, code): &&(String, &str)| !final_codes.contains(code);
                    seen.unprocessed.iter().filter(again).count()
                }
            })
            .sum()
    }

    /// Ids X-Ray refused for good: listed as unprocessed with one of `final_codes`.
    pub fn refused_for_good(&self, final_codes: &[&str]) -> Vec<String> {
        self.seen()
            .iter()
            .flat_map(|seen| seen.unprocessed.clone())
            .filter(|(_, code)| final_codes.contains(code))
            .map(|(id, _)| id)
            .collect()
    }
}

impl State {
    /// Answers one `PutTraceSegments` body, maybe after a delay.
    fn answer(&self, body: &str) -> (Response, Option<std::time::Duration>) {
        let request: Value = serde_json::from_str(body).unwrap();
        let documents: Vec<Value> = request["TraceSegmentDocuments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| serde_json::from_str(d.as_str().unwrap()).unwrap())
            .collect();
        let answer = if self.down.load(Ordering::SeqCst) {
            Answer::Status(
                503,
                json!({"__type": "ServiceUnavailableException", "message": "drill: X-Ray is down"}),
            )
        } else {
            let mut script = self.script.lock().unwrap();
            match (script.len(), self.repeat_last) {
                (0, _) => Answer::Status(200, json!({"UnprocessedTraceSegments": []})),
                (1, true) => script.front().cloned().unwrap(),
                _ => script.pop_front().unwrap(),
            }
        };
        let mut delay = None;
        let (status, body, unprocessed) = match answer {
            Answer::Status(status, body) => (status, body, Vec::new()),
            Answer::Late(after) => {
                delay = Some(after);
                (200, json!({"UnprocessedTraceSegments": []}), Vec::new())
            }
            Answer::UnprocessHalf(code) => {
                let ids: Vec<(String, &'static str)> = documents
                    .iter()
                    .take(documents.len().div_ceil(2))
                    .map(|d| (d["id"].as_str().unwrap().to_owned(), code))
                    .collect();
                let entries: Vec<Value> = ids
                    .iter()
                    .map(|(id, _)| json!({"Id": id, "ErrorCode": code, "Message": "drill"}))
                    .collect();
                (200, json!({"UnprocessedTraceSegments": entries}), ids)
            }
        };
        self.seen.lock().unwrap().push(Seen {
            documents,
            status,
            unprocessed,
            late: delay.is_some(),
        });
        let mut response: Response =
            (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
        if let Some(kind) = body.get("__type").and_then(Value::as_str) {
            response
                .headers_mut()
                .insert("x-amzn-errortype", kind.parse().unwrap());
        }
        (response, delay)
    }
}

/// X-Ray's answer to a request whose signature does not match.
fn invalid_signature(problem: &str) -> Response {
    let body = json!({"__type": "InvalidSignatureException", "message": problem});
    let mut response = (StatusCode::FORBIDDEN, body.to_string()).into_response();
    response.headers_mut().insert(
        "x-amzn-errortype",
        "InvalidSignatureException".parse().unwrap(),
    );
    response
}

impl Received {
    /// Recomputes the SigV4 signature of this request (the headers it names as signed,
    /// the body as received, the time of its `x-amz-date`) with the test credentials
    /// and compares it with the one in `Authorization`.
    fn check_signature(&self) -> Result<(), String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;

        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(format!("no {name} header"))
        };
        let authorization = header("authorization")?;
        let field = |key: &str| {
            authorization
                .split([' ', ','])
                .find_map(|part| part.strip_prefix(key))
                .ok_or(format!("no {key} in {authorization:?}"))
        };
        let signed_headers: Vec<&str> = field("SignedHeaders=")?.split(';').collect();
        let claimed = field("Signature=")?;
        let time = signing_time(header("x-amz-date")?)?;
        let headers = signed_headers
            .iter()
            .map(|name| header(name).map(|value| (*name, value)))
            .collect::<Result<Vec<_>, _>>()?;
        let uri = format!("http://{}{}", header("host")?, self.uri);
        let signable = SignableRequest::new(
            self.method.as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(&self.body),
        )
        .map_err(|e| e.to_string())?;
        let identity = aws_credential_types::Credentials::new(
            moto::ACCESS_KEY_ID,
            moto::SECRET_ACCESS_KEY,
            None,
            None,
            "fake X-Ray",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(moto::REGION)
            .name("xray")
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let expected = sign(signable, &params).map_err(|e| e.to_string())?;
        if expected.signature() == claimed {
            Ok(())
        } else {
            Err(format!(
                "the request signature we calculated ({}) does not match the one sent ({claimed}) \
                 over a body of {} bytes",
                expected.signature(),
                self.body.len()
            ))
        }
    }
}

/// `x-amz-date` (`20261201T155300Z`) as a time.
fn signing_time(basic: &str) -> Result<std::time::SystemTime, String> {
    let wrong = || format!("x-amz-date {basic:?} is not YYYYMMDDTHHMMSSZ");
    let digits = |range: std::ops::Range<usize>| -> Result<i64, String> {
        basic
            .get(range)
            .and_then(|d| d.parse().ok())
            .ok_or_else(wrong)
    };
    if basic.len() != 16 || basic.as_bytes()[8] != b'T' || !basic.ends_with('Z') {
        return Err(wrong());
    }
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    let secs = u64::try_from(secs).map_err(|_| wrong())?;
    Ok(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
