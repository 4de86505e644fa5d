//! The X-Ray daemon's TCP side: the sampling API proxy SDKs call on their daemon address.
//!
//! X-Ray SDKs with centralized sampling poll their daemon (same host and port as the UDP
//! segments, default 2000) unsigned: `POST /GetSamplingRules` every 5 minutes and
//! `POST /SamplingTargets` every 10 s with their statistics. The relay answers both on
//! `--daemon-listen`'s port over TCP by calling X-Ray with its own credentials
//! (aws-sdk-xray: SigV4, IRSA / Pod Identity, `AWS_ENDPOINT_URL_XRAY`), so SDK pods need
//! no AWS permissions, and returns X-Ray's answer in the API's JSON.
//!
//! When X-Ray cannot be asked (no region or credentials, network down, access denied,
//! throttled) the relay still answers, so SDKs log nothing and keep sampling sensibly:
//! `GetSamplingRules` gets the last rules X-Ray gave (if any), else one local fallback
//! rule equal to X-Ray's default (1 request per second, then 5 %); `SamplingTargets`
//! gets no new targets (SDKs keep their current rates and borrow from the reservoir).
//! The relay logs one warning when X-Ray becomes unreachable and one line when it is back.

pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_xray::Client;
use aws_smithy_types::error::display::DisplayErrorContext;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{debug, info, warn};

use wire::{
    GetSamplingRulesRequest, GetSamplingRulesResponse, GetSamplingTargetsRequest,
    GetSamplingTargetsResponse, Rule, SamplingRuleRecord,
};

/// Path of `GetSamplingRules`, on X-Ray and on the daemon.
pub const RULES_PATH: &str = "/GetSamplingRules";
/// Path of `GetSamplingTargets`, on X-Ray and on the daemon.
pub const TARGETS_PATH: &str = "/SamplingTargets";
/// Name of the local fallback rule (X-Ray's own default rule has this name).
pub const FALLBACK_RULE_NAME: &str = "Default";
/// Fallback rule: requests per second sampled before the rate applies (X-Ray's default).
pub const FALLBACK_RESERVOIR_SIZE: i32 = 1;
/// Fallback rule: share sampled beyond the reservoir (X-Ray's default).
pub const FALLBACK_FIXED_RATE: f64 = 0.05;

/// Answers the sampling API for SDKs.
#[derive(Debug)]
pub struct SamplingProxy {
    /// The X-Ray client, `None` when the relay has no AWS settings (e.g. `--sink stdout`).
    client: Option<Client>,
    /// The last complete first page of rules X-Ray returned.
    last_rules: Mutex<Option<GetSamplingRulesResponse>>,
    /// Whether X-Ray is currently failing (to log the change once, not every poll).
    unavailable: AtomicBool,
}

impl SamplingProxy {
    /// A proxy calling X-Ray through `client`, or answering locally without one.
    pub fn new(client: Option<Client>) -> Self {
        SamplingProxy {
            client,
            last_rules: Mutex::new(None),
            unavailable: AtomicBool::new(false),
        }
    }

    /// The daemon TCP router: the two sampling paths.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(RULES_PATH, post(get_sampling_rules))
            .route(TARGETS_PATH, post(get_sampling_targets))
            .fallback(not_found)
            .with_state(self)
    }

    /// `GetSamplingRules` through X-Ray, else the last good answer or the fallback rule.
    pub async fn rules(&self, request: GetSamplingRulesRequest) -> GetSamplingRulesResponse {
        let first_page = request.next_token.is_none();
        let result = match &self.client {
            Some(client) => client
                .get_sampling_rules()
                .set_next_token(request.next_token)
                .send()
                .await
                .map(|output| wire::rules_response(&output))
                .map_err(|e| DisplayErrorContext(e).to_string()),
            None => Err("the relay has no X-Ray client (no AWS settings)".to_owned()),
        };
        match result {
            Ok(answer) => {
                self.available();
                if first_page && answer.next_token.is_none() {
                    *lock(&self.last_rules) = Some(answer.clone());
                }
                answer
            }
            Err(error) => {
                self.unavailable_now(&error);
                lock(&self.last_rules)
                    .clone()
                    .unwrap_or_else(fallback_rules)
            }
        }
    }

    /// `GetSamplingTargets` through X-Ray, else no new targets.
    pub async fn targets(
        &self,
        request: GetSamplingTargetsRequest,
    ) -> Result<GetSamplingTargetsResponse, String> {
        let documents = wire::statistics(&request)?;
        let result = match &self.client {
            Some(client) => client
                .get_sampling_targets()
                .set_sampling_statistics_documents(Some(documents))
                .send()
                .await
                .map(|output| wire::targets_response(&output))
                .map_err(|e| DisplayErrorContext(e).to_string()),
            None => Err("the relay has no X-Ray client (no AWS settings)".to_owned()),
        };
        Ok(match result {
            Ok(answer) => {
                self.available();
                answer
            }
            Err(error) => {
                self.unavailable_now(&error);
                GetSamplingTargetsResponse::default()
            }
        })
    }

    /// Notes that X-Ray answered; logs once after an outage.
    fn available(&self) {
        if self.unavailable.swap(false, Ordering::SeqCst) {
            info!("X-Ray answers sampling requests again; SDKs get its rules and targets.");
        }
    }

    /// Notes that X-Ray failed; logs once per outage.
    fn unavailable_now(&self, error: &str) {
        if self.unavailable.swap(true, Ordering::SeqCst) {
            debug!(%error, "X-Ray sampling call failed; answering locally.");
        } else {
            warn!(%error, "X-Ray sampling calls fail; SDKs get the last known rules or the local fallback rule (1/s then 5 %) until X-Ray answers.");
        }
    }
}

/// X-Ray's default rule, served when X-Ray never answered.
pub fn fallback_rules() -> GetSamplingRulesResponse {
    GetSamplingRulesResponse {
        sampling_rule_records: vec![SamplingRuleRecord {
            sampling_rule: Some(Rule {
                rule_name: Some(FALLBACK_RULE_NAME.to_owned()),
                rule_arn: Some(format!("arn:aws:xray:::sampling-rule/{FALLBACK_RULE_NAME}")),
                resource_arn: "*".to_owned(),
                priority: 10_000,
                fixed_rate: FALLBACK_FIXED_RATE,
                reservoir_size: FALLBACK_RESERVOIR_SIZE,
                service_name: "*".to_owned(),
                service_type: "*".to_owned(),
                host: "*".to_owned(),
                http_method: "*".to_owned(),
                url_path: "*".to_owned(),
                version: 1,
                attributes: Default::default(),
            }),
            created_at: Some(0.0),
            modified_at: Some(0.0),
        }],
        next_token: None,
    }
}

/// Locks, recovering from a poisoned lock (the data is a plain cache).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// === Handlers ===

/// `POST /GetSamplingRules` (an empty body is an empty request).
async fn get_sampling_rules(State(proxy): State<Arc<SamplingProxy>>, body: Bytes) -> Response {
    match parse::<GetSamplingRulesRequest>(&body) {
        Ok(request) => Json(proxy.rules(request).await).into_response(),
        Err(message) => invalid_request(message),
    }
}

/// `POST /SamplingTargets`.
async fn get_sampling_targets(State(proxy): State<Arc<SamplingProxy>>, body: Bytes) -> Response {
    let request = match parse::<GetSamplingTargetsRequest>(&body) {
        Ok(request) => request,
        Err(message) => return invalid_request(message),
    };
    match proxy.targets(request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(message) => invalid_request(message),
    }
}

/// Parses a JSON body; empty means default.
///
/// # Errors
/// A message saying what is wrong with the body.
fn parse<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("the body is not a valid sampling request: {e}"))
}

/// A 400 in the X-Ray API's error shape, so SDK clients report it as such.
fn invalid_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"__type": "InvalidRequestException", "message": message})),
    )
        .into_response()
}

/// Any other path.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "__type": "NotFoundException",
            "message": format!("the daemon port serves POST {RULES_PATH} and POST {TARGETS_PATH} over TCP, segments over UDP"),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without X-Ray, rules are the fallback rule and targets are empty with a
    /// `LastRuleModification` SDKs accept.
    #[tokio::test]
    async fn answers_locally_without_xray() {
        let proxy = SamplingProxy::new(None);
        let rules = proxy.rules(GetSamplingRulesRequest::default()).await;
        assert_eq!(rules, fallback_rules());
        let rule = rules.sampling_rule_records[0]
            .sampling_rule
            .as_ref()
            .unwrap();
        assert_eq!(
            (rule.reservoir_size, rule.fixed_rate, rule.version),
            (1, 0.05, 1)
        );
        let json = serde_json::to_value(
            proxy
                .targets(GetSamplingTargetsRequest::default())
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            json,
            json!({"SamplingTargetDocuments": [], "LastRuleModification": 0.0, "UnprocessedStatistics": []})
        );
    }

    /// Statistics without a required member are a 400, not a call to X-Ray.
    #[tokio::test]
    async fn refuses_bad_statistics() {
        let proxy = SamplingProxy::new(None);
        assert!(
            parse::<GetSamplingTargetsRequest>(b"{\"SamplingStatisticsDocuments\": [{}]}").is_err()
        );
        assert!(parse::<GetSamplingRulesRequest>(b"").is_ok());
        assert!(parse::<GetSamplingRulesRequest>(b"not json").is_err());
        let request = GetSamplingTargetsRequest {
            sampling_statistics_documents: vec![wire::StatisticsDocument {
                rule_name: "r".into(),
                client_id: "c".into(),
                timestamp: 1.0,
                ..Default::default()
            }],
        };
        assert!(proxy.targets(request).await.is_ok());
    }
}
