//! Reading traces back from the X-Ray API and making sense of them.
//!
//! - Fetching: `GetTraceSummaries` over a time window lists the trace ids, `BatchGetTraces`
//!   (5 ids per call) returns their documents; [`wait_for_traces`] polls until the expected
//!   traces are complete and, on timeout, returns what it has so the failure can show it.
//! - Structure: [`Trace`] parses each segment document, embedded subsegments included, and
//!   links independent documents through `parent_id`. [`Trace::problems`] lists what breaks
//!   the tree (bad or duplicate ids, a `parent_id` that resolves to nothing, bad times).
//! - Service graph: moto's `GetServiceGraph` returns no services, so edges are derived from
//!   the documents as X-Ray does: a `namespace: "remote"` subsegment inside/under segment A,
//!   and a segment B whose `parent_id` is that subsegment's id, make the edge A → B.
//! - Printing: [`Trace::render`] draws the trace as an indented tree; [`render_graph`] lists
//!   edges.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_xray::primitives::DateTime;
use hyper::http::Method;
use serde_json::Value;

use crate::error::{HarnessError, Result};
use crate::http::{HttpClient, header_map};
use crate::moto::{ACCESS_KEY_ID, REGION, sdk_error, xray_client};

/// `BatchGetTraces` accepts at most this many ids per call.
pub const MAX_BATCH_GET: usize = 5;
/// How far around the expected times the summary window reaches (clock steps, epochs).
const WINDOW_SLACK: Duration = Duration::from_secs(120);
/// Poll period of [`wait_for_traces`].
const POLL_EVERY: Duration = Duration::from_millis(300);
/// Timeout of the raw `GetTraceSummaries` call.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

// === Documents ===

/// Segment or subsegment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A service's segment (the filter's inbound side).
    Segment,
    /// A subsegment: embedded in a segment, or independent (`"type": "subsegment"`).
    Subsegment,
}

/// One segment document or embedded subsegment.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as received.
    pub raw: Value,
    /// `id` (16 hex digits).
    pub id: String,
    /// `name`.
    pub name: String,
    /// `trace_id` (absent on embedded subsegments).
    pub trace_id: Option<String>,
    /// `parent_id`.
    pub parent_id: Option<String>,
    /// Segment or subsegment.
    pub kind: Kind,
    /// Whether it sits inside another document's `subsegments`.
    pub embedded: bool,
    /// `namespace` (`remote` for calls to other services).
    pub namespace: Option<String>,
    /// `start_time` (epoch seconds).
    pub start_time: Option<f64>,
    /// `end_time` (epoch seconds).
    pub end_time: Option<f64>,
    /// `in_progress`.
    pub in_progress: bool,
    /// `http.response.status`.
    pub http_status: Option<u64>,
    /// `error` (4xx).
    pub error: bool,
    /// `fault` (5xx).
    pub fault: bool,
    /// `throttle` (429).
    pub throttle: bool,
    /// Embedded `subsegments`.
    pub subsegments: Vec<Document>,
}

impl Document {
    /// Parses one segment document (JSON text).
    ///
    /// # Errors
    /// [`HarnessError::Unexpected`] when it is not a JSON object.
    pub fn parse(text: &str) -> Result<Self> {
        let raw: Value = serde_json::from_str(text)
            .map_err(|e| HarnessError::unexpected("segment document", format!("{e}: {text}")))?;
        Self::from_value(raw, false)
    }

    fn from_value(raw: Value, embedded: bool) -> Result<Self> {
        if !raw.is_object() {
            return Err(HarnessError::unexpected(
                "segment document",
                format!("not an object: {raw}"),
            ));
        }
        let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
        let flag = |key: &str| raw.get(key).and_then(Value::as_bool).unwrap_or(false);
        let kind = if embedded || text("type").as_deref() == Some("subsegment") {
            Kind::Subsegment
        } else {
            Kind::Segment
        };
        let subsegments = raw
            .get("subsegments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|sub| Self::from_value(sub.clone(), true))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            id: text("id").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            trace_id: text("trace_id"),
            parent_id: text("parent_id"),
            kind,
            embedded,
            namespace: text("namespace"),
            start_time: raw.get("start_time").and_then(Value::as_f64),
            end_time: raw.get("end_time").and_then(Value::as_f64),
            in_progress: flag("in_progress"),
            http_status: raw.pointer("/http/response/status").and_then(Value::as_u64),
            error: flag("error"),
            fault: flag("fault"),
            throttle: flag("throttle"),
            subsegments,
            raw,
        })
    }

    /// Whether this is a subsegment for a call to another service (`namespace: remote`).
    pub fn is_remote(&self) -> bool {
        self.kind == Kind::Subsegment && self.namespace.as_deref() == Some("remote")
    }

    /// `end_time - start_time` in milliseconds.
    pub fn duration_ms(&self) -> Option<f64> {
        Some((self.end_time? - self.start_time?) * 1000.0)
    }

    /// One line: name, kind, duration, status, flags, id.
    pub fn summary_line(&self) -> String {
        let kind = match (self.kind, self.is_remote(), self.embedded) {
            (Kind::Segment, ..) => "segment",
            (Kind::Subsegment, true, _) => "subsegment (remote)",
            (Kind::Subsegment, false, true) => "subsegment (embedded)",
            (Kind::Subsegment, false, false) => "subsegment",
        };
        let duration = self
            .duration_ms()
            .map_or_else(|| "?".to_owned(), |ms| format!("{ms:.1} ms"));
        let status = self
            .http_status
            .map_or_else(|| "-".to_owned(), |s| s.to_string());
        let mut flags = String::new();
        for (set, name) in [
            (self.error, " error"),
            (self.throttle, " throttle"),
            (self.fault, " fault"),
            (self.in_progress, " in_progress"),
        ] {
            if set {
                flags.push_str(name);
            }
        }
        format!(
            "{} [{kind}] {duration} http {status}{flags} id={}",
            self.name, self.id
        )
    }
}

// === Trace ===

/// A directed edge of the service graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// The calling service (the segment that holds the remote subsegment).
    pub from: String,
    /// The called service (the segment whose parent is that subsegment).
    pub to: String,
}

impl Edge {
    /// An edge `from → to`.
    pub fn new(from: &str, to: &str) -> Self {
        Self {
            from: from.to_owned(),
            to: to.to_owned(),
        }
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

/// All documents of one trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The X-Ray trace id.
    pub id: String,
    /// The top-level documents (segments and independent subsegments).
    pub documents: Vec<Document>,
}

/// The documents of a trace flattened (embedded ones included) with their tree links.
struct Flat<'a> {
    nodes: Vec<&'a Document>,
    /// Parent of each node: the enclosing document, else the one its `parent_id` names.
    parent: Vec<Option<usize>>,
    /// Nodes whose `parent_id` names no document of the trace.
    unresolved: Vec<usize>,
    /// Ids that occur more than once.
    duplicates: Vec<String>,
}

impl Trace {
    /// Parses the documents of trace `id`.
    ///
    /// # Errors
    /// [`HarnessError::Unexpected`] when a document is not a JSON object.
    pub fn parse<'a>(id: &str, documents: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut documents = documents
            .into_iter()
            .map(Document::parse)
            .collect::<Result<Vec<_>>>()?;
        documents.sort_by(|a, b| {
            a.start_time
                .unwrap_or(0.0)
                .total_cmp(&b.start_time.unwrap_or(0.0))
        });
        let id = if id.is_empty() {
            documents
                .iter()
                .find_map(|d| d.trace_id.clone())
                .unwrap_or_default()
        } else {
            id.to_owned()
        };
        Ok(Self { id, documents })
    }

    /// The earliest `start_time` of its documents.
    pub fn start_time(&self) -> f64 {
        self.documents
            .iter()
            .filter_map(|d| d.start_time)
            .fold(f64::INFINITY, f64::min)
    }

    /// Every document, embedded subsegments included, depth first.
    pub fn all(&self) -> Vec<&Document> {
        self.flat().nodes
    }

    /// The one document named `name` that is (`remote`) or is not a remote subsegment;
    /// `None` when there is no such document or more than one.
    pub fn single(&self, name: &str, remote: bool) -> Option<&Document> {
        let mut found = self
            .all()
            .into_iter()
            .filter(|d| d.name == name && d.is_remote() == remote);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// The document or embedded subsegment with `id`.
    pub fn find(&self, id: &str) -> Option<&Document> {
        self.all().into_iter().find(|d| d.id == id)
    }

    /// The segments (one per service hop).
    pub fn segments(&self) -> Vec<&Document> {
        self.documents
            .iter()
            .filter(|d| d.kind == Kind::Segment)
            .collect()
    }

    /// Every remote subsegment (calls to other services), embedded or independent.
    pub fn remote_subsegments(&self) -> Vec<&Document> {
        self.all().into_iter().filter(|d| d.is_remote()).collect()
    }

    /// The segment a document belongs to: itself, or the nearest segment above it.
    pub fn enclosing_segment(&self, id: &str) -> Option<&Document> {
        let flat = self.flat();
        let mut at = flat.nodes.iter().position(|d| d.id == id)?;
        for _ in 0..=flat.nodes.len() {
            if flat.nodes[at].kind == Kind::Segment {
                return Some(flat.nodes[at]);
            }
            at = flat.parent[at]?;
        }
        None
    }

    /// The parent of the document with `id` in the tree (enclosing or by `parent_id`).
    pub fn parent_of(&self, id: &str) -> Option<&Document> {
        let flat = self.flat();
        let at = flat.nodes.iter().position(|d| d.id == id)?;
        flat.parent[at].map(|p| flat.nodes[p])
    }

    /// Service-graph edges: for each remote subsegment under segment A and each segment B
    /// whose `parent_id` is that subsegment, the edge A → B.
    pub fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for sub in self.remote_subsegments() {
            let Some(caller) = self.enclosing_segment(&sub.id) else {
                continue;
            };
            for callee in self.segments() {
                if callee.parent_id.as_deref() == Some(sub.id.as_str()) {
                    edges.push(Edge::new(&caller.name, &callee.name));
                }
            }
        }
        edges.sort();
        edges
    }

    /// What is structurally wrong with the trace; empty when every id is well-formed and
    /// unique, every `parent_id` resolves, and times are sane.
    pub fn problems(&self) -> Vec<String> {
        self.problems_with_external_parents(&[])
    }

    /// [`Trace::problems`], except that a segment whose `parent_id` is one of `external`
    /// may point outside the trace: the span of a caller traced by someone else (a Zipkin-
    /// or W3C-instrumented client), which X-Ray accepts as a segment's parent.
    pub fn problems_with_external_parents(&self, external: &[&str]) -> Vec<String> {
        let flat = self.flat();
        let mut problems = Vec::new();
        if !is_xray_trace_id(&self.id) {
            problems.push(format!("trace id {:?} is not 1-<8 hex>-<24 hex>", self.id));
        }
        for doc in &self.documents {
            problems.extend(crate::schema::document_problems(&doc.raw));
            match &doc.trace_id {
                Some(t) if *t == self.id => {}
                other => problems.push(format!(
                    "{} ({}) has trace_id {other:?}, not {}",
                    doc.name, doc.id, self.id
                )),
            }
            if doc.kind == Kind::Subsegment && doc.parent_id.is_none() {
                problems.push(format!(
                    "independent subsegment {} ({}) has no parent_id",
                    doc.name, doc.id
                ));
            }
        }
        for doc in &flat.nodes {
            if !is_span_id(&doc.id) {
                problems.push(format!(
                    "{} has id {:?}, not 16 hex digits",
                    doc.name, doc.id
                ));
            }
            if doc.name.is_empty() {
                problems.push(format!("document {} has no name", doc.id));
            }
            match (doc.start_time, doc.end_time, doc.in_progress) {
                (None, ..) => problems.push(format!("{} ({}) has no start_time", doc.name, doc.id)),
                (Some(_), None, false) => problems.push(format!(
                    "{} ({}) has neither end_time nor in_progress",
                    doc.name, doc.id
                )),
                (Some(start), Some(end), _) if end < start => problems.push(format!(
                    "{} ({}) ends before it starts ({start} > {end})",
                    doc.name, doc.id
                )),
                _ => {}
            }
        }
        for id in &flat.duplicates {
            problems.push(format!("id {id} occurs more than once"));
        }
        for &at in &flat.unresolved {
            let doc = flat.nodes[at];
            let outside_caller = doc.kind == Kind::Segment
                && doc
                    .parent_id
                    .as_deref()
                    .is_some_and(|p| external.contains(&p));
            if outside_caller {
                continue;
            }
            problems.push(format!(
                "{} ({}) has parent_id {} which is no document of the trace",
                doc.name,
                doc.id,
                doc.parent_id.as_deref().unwrap_or("?")
            ));
        }
        problems
    }

    /// The trace as an indented tree, one document per line.
    pub fn render(&self) -> String {
        let flat = self.flat();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); flat.nodes.len()];
        let mut roots = Vec::new();
        for (at, parent) in flat.parent.iter().enumerate() {
            match parent {
                Some(p) => children[*p].push(at),
                None => roots.push(at),
            }
        }
        let by_start = |list: &mut Vec<usize>| {
            list.sort_by(|a, b| {
                let (a, b) = (flat.nodes[*a], flat.nodes[*b]);
                a.start_time
                    .unwrap_or(0.0)
                    .total_cmp(&b.start_time.unwrap_or(0.0))
                    .then_with(|| a.name.cmp(&b.name))
            });
        };
        by_start(&mut roots);
        for list in &mut children {
            by_start(list);
        }
        let mut out = format!("trace {} ({} documents)\n", self.id, self.documents.len());
        let mut visited = vec![false; flat.nodes.len()];
        for (i, root) in roots.iter().enumerate() {
            let last = i + 1 == roots.len();
            render_node(&flat, &children, *root, "", last, &mut visited, &mut out);
        }
        out
    }

    fn flat(&self) -> Flat<'_> {
        fn push<'a>(
            doc: &'a Document,
            parent: Option<usize>,
            nodes: &mut Vec<&'a Document>,
            parents: &mut Vec<Option<usize>>,
        ) {
            let at = nodes.len();
            nodes.push(doc);
            parents.push(parent);
            for sub in &doc.subsegments {
                push(sub, Some(at), nodes, parents);
            }
        }
        let mut nodes = Vec::new();
        let mut parent = Vec::new();
        for doc in &self.documents {
            push(doc, None, &mut nodes, &mut parent);
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut duplicates = Vec::new();
        for (at, doc) in nodes.iter().enumerate() {
            if index.insert(doc.id.as_str(), at).is_some() {
                duplicates.push(doc.id.clone());
            }
        }
        let mut unresolved = Vec::new();
        for at in 0..nodes.len() {
            if parent[at].is_some() {
                continue;
            }
            if let Some(pid) = nodes[at].parent_id.as_deref() {
                match index.get(pid) {
                    Some(&p) if p != at => parent[at] = Some(p),
                    _ => unresolved.push(at),
                }
            }
        }
        // Break parent cycles (a → b → a) so walks and rendering terminate.
        for start in 0..nodes.len() {
            let mut at = start;
            for _ in 0..=nodes.len() {
                match parent[at] {
                    Some(p) if p == start => {
                        parent[start] = None;
                        unresolved.push(start);
                        break;
                    }
                    Some(p) => at = p,
                    None => break,
                }
            }
        }
        Flat {
            nodes,
            parent,
            unresolved,
            duplicates,
        }
    }
}

fn render_node(
    flat: &Flat<'_>,
    children: &[Vec<usize>],
    at: usize,
    prefix: &str,
    last: bool,
    visited: &mut [bool],
    out: &mut String,
) {
    if visited[at] {
        return;
    }
    visited[at] = true;
    let branch = if last { "└─ " } else { "├─ " };
    let doc = flat.nodes[at];
    let note = if flat.unresolved.contains(&at) {
        format!(
            "  (parent {} not in trace)",
            doc.parent_id.as_deref().unwrap_or("?")
        )
    } else {
        String::new()
    };
    out.push_str(&format!("{prefix}{branch}{}{note}\n", doc.summary_line()));
    let inner = format!("{prefix}{}", if last { "   " } else { "│  " });
    for (i, child) in children[at].iter().enumerate() {
        let last_child = i + 1 == children[at].len();
        render_node(flat, children, *child, &inner, last_child, visited, out);
    }
}

/// Whether `id` is an X-Ray trace id `1-<8 hex>-<24 hex>` (lowercase).
pub fn is_xray_trace_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    matches!(parts.as_slice(), ["1", epoch, rest] if is_hex(epoch, 8) && is_hex(rest, 24))
}

/// Whether `id` is a segment id: 16 lowercase hex digits.
pub fn is_span_id(id: &str) -> bool {
    is_hex(id, 16)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// === Service graph ===

/// Edges of all `traces` with how many traces have each.
pub fn service_graph(traces: &[Trace]) -> BTreeMap<Edge, usize> {
    let mut graph = BTreeMap::new();
    for trace in traces {
        let mut edges = trace.edges();
        edges.dedup();
        for edge in edges {
            *graph.entry(edge).or_insert(0) += 1;
        }
    }
    graph
}

/// The service graph, one edge per line with its trace count.
pub fn render_graph(graph: &BTreeMap<Edge, usize>) -> String {
    if graph.is_empty() {
        return "(no edges)\n".to_owned();
    }
    graph
        .iter()
        .map(|(edge, n)| format!("{edge}  ({n} traces)\n"))
        .collect()
}

// === Fetching ===

/// The X-Ray API the traces are read from: an SDK client plus its endpoint (for the raw
/// `GetTraceSummaries` fallback that moto needs).
#[derive(Debug, Clone)]
pub struct XrayApi {
    client: aws_sdk_xray::Client,
    endpoint: String,
    http: HttpClient,
    /// Set once the SDK failed to read a `GetTraceSummaries` answer: go raw from then on.
    summaries_need_raw: Arc<AtomicBool>,
}

impl XrayApi {
    /// The API at `endpoint` (e.g. `http://127.0.0.1:PORT`), with the harness's dummy
    /// credentials and region ([`crate::moto::xray_client`]).
    pub fn new(endpoint: &str) -> Self {
        Self {
            client: xray_client(endpoint),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http: HttpClient::new(),
            summaries_need_raw: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_xray::Client {
        &self.client
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Ids of the finished traces that started and ended within `[from, to]`
    /// (`GetTraceSummaries`, all pages).
    ///
    /// moto 5.2.5 answers `"Users": {}` where the API has a list, which the Rust SDK refuses
    /// to deserialise; when the SDK call fails, the same operation is sent as plain JSON
    /// (`POST /TraceSummaries`) and the ids are read from the raw answer.
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when both the SDK call and the raw call fail.
    pub async fn list_trace_ids(&self, from: SystemTime, to: SystemTime) -> Result<Vec<String>> {
        let (from, to) = (epoch_secs(from), epoch_secs(to) + 1);
        let mut ids = if self.summaries_need_raw.load(Ordering::Relaxed) {
            self.list_raw(from, to).await?
        } else {
            match self.list_with_sdk(from, to).await {
                Ok(ids) => ids,
                Err(sdk_err) => {
                    let ids =
                        self.list_raw(from, to)
                            .await
                            .map_err(|raw_err| HarnessError::Xray {
                                operation: "GetTraceSummaries",
                                reason: format!("{sdk_err}; raw fallback: {raw_err}"),
                            })?;
                    self.summaries_need_raw.store(true, Ordering::Relaxed);
                    ids
                }
            }
        };
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list_with_sdk(&self, from: i64, to: i64) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_trace_summaries()
                .start_time(DateTime::from_secs(from))
                .end_time(DateTime::from_secs(to))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| sdk_error("GetTraceSummaries", e))?;
            ids.extend(
                output
                    .trace_summaries()
                    .iter()
                    .filter_map(|s| s.id().map(str::to_owned)),
            );
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    async fn list_raw(&self, from: i64, to: i64) -> Result<Vec<String>> {
        let url = format!("{}/TraceSummaries", self.endpoint);
        // moto picks the service from the credential scope; it does not check signatures.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20000101/{REGION}/xray/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let headers = header_map(&[
            ("content-type", "application/json"),
            ("authorization", &authorization),
        ])?;
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({"StartTime": from, "EndTime": to});
            if let Some(token) = next_token.take() {
                request["NextToken"] = Value::String(token);
            }
            let body = bytes::Bytes::from(request.to_string());
            let response = self
                .http
                .send(Method::POST, &url, &headers, body, RAW_TIMEOUT)
                .await?;
            if response.status != 200 {
                return Err(HarnessError::unexpected(
                    format!("status of POST {url}"),
                    format!("{}: {}", response.status, response.text()),
                ));
            }
            let value: Value = serde_json::from_slice(&response.body).map_err(|e| {
                HarnessError::unexpected(format!("body of POST {url}"), e.to_string())
            })?;
            ids.extend(
                value["TraceSummaries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["Id"].as_str().map(str::to_owned)),
            );
            match value["NextToken"].as_str() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    /// The traces with `ids`, via `BatchGetTraces` in chunks of [`MAX_BATCH_GET`].
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when a call fails; [`HarnessError::Unexpected`] for a document
    /// that is not JSON.
    pub async fn batch_get_traces(&self, ids: &[String]) -> Result<Vec<Trace>> {
        let mut traces = Vec::new();
        for chunk in ids.chunks(MAX_BATCH_GET) {
            let mut next_token: Option<String> = None;
            loop {
                let output = self
                    .client
                    .batch_get_traces()
                    .set_trace_ids(Some(chunk.to_vec()))
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetTraces", e))?;
                for trace in output.traces() {
                    let documents = trace.segments().iter().filter_map(|s| s.document());
                    traces.push(Trace::parse(trace.id().unwrap_or_default(), documents)?);
                }
                match output.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                    _ => break,
                }
            }
        }
        traces.sort_by(|a, b| a.start_time().total_cmp(&b.start_time()));
        Ok(traces)
    }

    /// Every trace in `[from, to]`.
    ///
    /// # Errors
    /// As [`XrayApi::list_trace_ids`] and [`XrayApi::batch_get_traces`].
    pub async fn fetch_traces(&self, from: SystemTime, to: SystemTime) -> Result<Vec<Trace>> {
        let ids = self.list_trace_ids(from, to).await?;
        self.batch_get_traces(&ids).await
    }
}

/// What [`wait_for_traces`] waits for.
#[derive(Debug, Clone, Copy)]
pub struct Expectation {
    /// At least this many traces …
    pub traces: usize,
    /// … each with at least this many top-level documents.
    pub documents_per_trace: usize,
}

/// What [`wait_for_traces`] found.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The traces, oldest first.
    pub traces: Vec<Trace>,
    /// Whether the expectation was met (false: timed out).
    pub complete: bool,
    /// How long the wait took.
    pub waited: Duration,
    /// The last error from the API while polling, if any.
    pub last_error: Option<String>,
}

impl Collected {
    /// A description for failure messages: counts, documents per trace, the first traces.
    pub fn describe(&self) -> String {
        let sizes: Vec<usize> = self.traces.iter().map(|t| t.documents.len()).collect();
        let mut out = format!(
            "{} traces after {:.1?} (complete: {}), documents per trace: {sizes:?}\n",
            self.traces.len(),
            self.waited,
            self.complete
        );
        if let Some(err) = &self.last_error {
            out.push_str(&format!("last API error: {err}\n"));
        }
        for trace in self.traces.iter().take(3) {
            out.push_str(&trace.render());
        }
        if self.traces.len() > 3 {
            out.push_str(&format!("… and {} more traces\n", self.traces.len() - 3));
        }
        out
    }
}

/// Polls the X-Ray API until `expect` is met or `timeout` passes, for traces that started
/// after `since`. Once met, it waits `settle` more and fetches again, so late or extra
/// documents and traces show up in the result (tests that expect *exactly* N need that).
/// Never fails: errors while polling end up in [`Collected::last_error`].
pub async fn wait_for_traces(
    api: &XrayApi,
    since: SystemTime,
    expect: Expectation,
    timeout: Duration,
    settle: Duration,
) -> Collected {
    let started = Instant::now();
    let from = since.checked_sub(WINDOW_SLACK).unwrap_or(UNIX_EPOCH);
    let mut traces = Vec::new();
    let mut last_error = None;
    let mut complete = false;
    loop {
        let to = SystemTime::now() + WINDOW_SLACK;
        match api.fetch_traces(from, to).await {
            Ok(found) => traces = found,
            Err(err) => last_error = Some(err.to_string()),
        }
        let full = traces
            .iter()
            .filter(|t| t.documents.len() >= expect.documents_per_trace)
            .count();
        if full >= expect.traces {
            complete = true;
            break;
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    if complete && !settle.is_zero() {
        tokio::time::sleep(settle).await;
        match api
            .fetch_traces(from, SystemTime::now() + WINDOW_SLACK)
            .await
        {
            Ok(found) => traces = found,
            Err(err) => last_error = Some(err.to_string()),
        }
    }
    Collected {
        traces,
        complete,
        waited: started.elapsed(),
        last_error,
    }
}

fn epoch_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "1-6563a1b2-0123456789abcdef01234567";

    fn doc(value: Value) -> String {
        value.to_string()
    }

    /// productpage → reviews → ratings as the filter ships it: 3 segments and 2 independent
    /// remote subsegments.
    fn bookinfo() -> Vec<String> {
        vec![
            doc(
                json!({"name": "productpage", "id": "a000000000000001", "trace_id": TRACE,
                "start_time": 100.0, "end_time": 100.030, "http": {"response": {"status": 200}}}),
            ),
            doc(
                json!({"type": "subsegment", "namespace": "remote", "name": "reviews",
                "id": "a000000000000002", "parent_id": "a000000000000001", "trace_id": TRACE,
                "start_time": 100.001, "end_time": 100.029, "http": {"response": {"status": 200}}}),
            ),
            doc(
                json!({"name": "reviews", "id": "b000000000000001", "parent_id": "a000000000000002",
                "trace_id": TRACE, "start_time": 100.002, "end_time": 100.028}),
            ),
            doc(
                json!({"type": "subsegment", "namespace": "remote", "name": "ratings",
                "id": "b000000000000002", "parent_id": "b000000000000001", "trace_id": TRACE,
                "start_time": 100.003, "end_time": 100.027, "fault": true,
                "http": {"response": {"status": 503}}}),
            ),
            doc(
                json!({"name": "ratings", "id": "c000000000000001", "parent_id": "b000000000000002",
                "trace_id": TRACE, "start_time": 100.004, "end_time": 100.026, "fault": true,
                "http": {"response": {"status": 503}}}),
            ),
        ]
    }

    fn parse(docs: &[String]) -> Trace {
        Trace::parse(TRACE, docs.iter().map(String::as_str)).unwrap()
    }

    #[test]
    fn linked_trace_has_no_problems_and_two_edges() {
        let trace = parse(&bookinfo());
        assert!(trace.problems().is_empty(), "{:?}", trace.problems());
        assert_eq!(
            trace.edges(),
            vec![
                Edge::new("productpage", "reviews"),
                Edge::new("reviews", "ratings")
            ]
        );
        assert_eq!(trace.segments().len(), 3);
        assert_eq!(trace.remote_subsegments().len(), 2);
        assert_eq!(
            trace.enclosing_segment("b000000000000002").unwrap().name,
            "reviews"
        );
        assert_eq!(
            trace.parent_of("c000000000000001").unwrap().id,
            "b000000000000002"
        );
    }

    #[test]
    fn renders_an_indented_tree() {
        let text = parse(&bookinfo()).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[1].starts_with("└─ productpage [segment]"), "{text}");
        assert!(
            lines[2].starts_with("   └─ reviews [subsegment (remote)]"),
            "{text}"
        );
        assert!(
            lines[5].contains("ratings [segment]") && lines[5].contains("http 503 fault"),
            "{text}"
        );
        assert!(lines[5].starts_with("            └─ "), "{text}");
    }

    #[test]
    fn embedded_remote_subsegments_make_edges_too() {
        let docs = vec![
            doc(
                json!({"name": "productpage", "id": "a000000000000001", "trace_id": TRACE,
                "start_time": 1.0, "end_time": 2.0, "subsegments": [
                    {"name": "reviews", "namespace": "remote", "id": "a000000000000002",
                     "start_time": 1.1, "end_time": 1.9}]}),
            ),
            doc(
                json!({"name": "reviews", "id": "b000000000000001", "parent_id": "a000000000000002",
                "trace_id": TRACE, "start_time": 1.2, "end_time": 1.8}),
            ),
        ];
        let trace = parse(&docs);
        assert!(trace.problems().is_empty(), "{:?}", trace.problems());
        assert_eq!(trace.edges(), vec![Edge::new("productpage", "reviews")]);
    }

    #[test]
    fn reports_broken_links_and_ids() {
        let mut docs = bookinfo();
        // ratings' segment points at a subsegment that never arrived.
        docs[4] = doc(
            json!({"name": "ratings", "id": "c000000000000001", "parent_id": "ffffffffffffffff",
            "trace_id": TRACE, "start_time": 100.004, "end_time": 100.026}),
        );
        docs.push(doc(
            json!({"name": "x", "id": "A000000000000001", "trace_id": "1-2-3",
            "start_time": 2.0, "end_time": 1.0}),
        ));
        let trace = parse(&docs);
        let problems = trace.problems().join("\n");
        assert!(
            problems.contains("parent_id ffffffffffffffff"),
            "{problems}"
        );
        assert!(problems.contains("not 16 hex digits"), "{problems}");
        assert!(
            problems.contains("has trace_id Some(\"1-2-3\")"),
            "{problems}"
        );
        assert!(problems.contains("ends before it starts"), "{problems}");
        assert_eq!(trace.edges(), vec![Edge::new("productpage", "reviews")]);
        assert!(
            trace
                .render()
                .contains("(parent ffffffffffffffff not in trace)")
        );
    }

    #[test]
    fn parent_cycles_do_not_hang() {
        let docs = vec![
            doc(
                json!({"name": "a", "id": "a000000000000001", "parent_id": "b000000000000001",
                "trace_id": TRACE, "start_time": 1.0, "end_time": 2.0}),
            ),
            doc(
                json!({"name": "b", "id": "b000000000000001", "parent_id": "a000000000000001",
                "trace_id": TRACE, "start_time": 1.0, "end_time": 2.0}),
            ),
        ];
        let trace = parse(&docs);
        assert!(!trace.problems().is_empty());
        assert!(trace.render().lines().count() >= 3);
        assert!(trace.enclosing_segment("a000000000000001").is_some());
    }

    #[test]
    fn graph_counts_traces_per_edge() {
        let a = parse(&bookinfo());
        let graph = service_graph(&[a.clone(), a]);
        assert_eq!(graph[&Edge::new("productpage", "reviews")], 2);
        assert!(render_graph(&graph).contains("reviews -> ratings  (2 traces)"));
    }

    #[test]
    fn id_formats() {
        assert!(is_xray_trace_id(TRACE));
        assert!(!is_xray_trace_id("1-6563a1b2-0123456789abcdef0123456"));
        assert!(!is_xray_trace_id("0123456789abcdef0123456789abcdef"));
        assert!(is_span_id("53995c3f42cd8ad8"));
        assert!(!is_span_id("53995C3F42CD8AD8"));
    }
}
