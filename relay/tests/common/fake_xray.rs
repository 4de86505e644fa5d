//! A scripted X-Ray `PutTraceSegments` endpoint in this process, for the retry tests
//! and the reliability drills: answers from a script, can be taken down and brought
//! back, and records every request's documents with the answer it got.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meshray_test_support::http::LocalServer;
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
        let app = Router::new().fallback(move |body: String| {
            let state = Arc::clone(&shared);
            async move {
                let (response, delay) = state.answer(&body);
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                response
            }
        });
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

    /// Every request so far.
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
