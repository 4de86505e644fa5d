//! The trace list: one row per trace (start, id, entry point, duration, status, segment
//! count, services), sortable and filterable by the page's script, each row opening the
//! trace's waterfall.

use std::collections::BTreeSet;
use std::fmt::{self, Write};

use meshray_core::trace::{Document, Trace};

use super::format::{esc, millis, utc_clock};

/// What the list and the waterfall's heading show of one trace.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    /// Position in the page (anchor `trace-{index}`).
    pub index: usize,
    /// The X-Ray trace id.
    pub id: String,
    /// Earliest start, epoch seconds.
    pub start: f64,
    /// Latest end minus earliest start, milliseconds (`None` while nothing has ended).
    pub duration_ms: Option<f64>,
    /// The root segment's name.
    pub entry: String,
    /// The root segment's `METHOD url`.
    pub request: String,
    /// The root segment's HTTP status.
    pub status: Option<u64>,
    /// The worst outcome of any document: `fault`, `throttle`, `error` or `ok`.
    pub outcome: &'static str,
    /// Top-level documents.
    pub documents: usize,
    /// Names of the services with a segment, sorted.
    pub services: Vec<String>,
}

impl TraceSummary {
    /// The summary of `trace`, shown at `index`.
    pub fn of(index: usize, trace: &Trace) -> Self {
        let all = trace.all();
        let root = trace.root_segment();
        let start = trace.start_time();
        let duration_ms = trace
            .end_time()
            .filter(|_| start.is_finite())
            .map(|end| (end - start) * 1000.0);
        let services: BTreeSet<&str> = trace.segments().iter().map(|d| d.name.as_str()).collect();
        Self {
            index,
            id: trace.id.clone(),
            start,
            duration_ms,
            entry: root.map(|r| r.name.clone()).unwrap_or_default(),
            request: root.map(request_line).unwrap_or_default(),
            status: root.and_then(|r| r.http_status),
            outcome: outcome(all.iter().copied()),
            documents: trace.documents.len(),
            services: services.into_iter().map(str::to_owned).collect(),
        }
    }

    /// Sort key of the status column: outcome first (fault > throttle > error > ok), then
    /// the HTTP status.
    pub fn status_rank(&self) -> u64 {
        let outcome = match self.outcome {
            "fault" => 3,
            "throttle" => 2,
            "error" => 1,
            _ => 0,
        };
        outcome * 1000 + self.status.unwrap_or(0)
    }
}

/// `METHOD url` of a document's `http.request`, empty without one.
pub fn request_line(doc: &Document) -> String {
    let text = |pointer: &str| {
        doc.raw
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    };
    let (method, url) = (text("/http/request/method"), text("/http/request/url"));
    format!("{method} {url}").trim().to_owned()
}

/// The worst outcome among `docs`.
pub fn outcome<'a>(docs: impl IntoIterator<Item = &'a Document>) -> &'static str {
    let mut worst = 0;
    for doc in docs {
        let rank = if doc.fault {
            3
        } else if doc.throttle {
            2
        } else {
            u8::from(doc.error)
        };
        worst = worst.max(rank);
    }
    ["ok", "error", "throttle", "fault"][usize::from(worst)]
}

/// Writes the list of `summaries` as a table.
pub fn write_list(out: &mut String, summaries: &[TraceSummary]) -> fmt::Result {
    out.write_str(
        "<div class=\"list-tools\"><input id=\"trace-filter\" type=\"search\" \
         placeholder=\"Filter traces: service, id, status, URL…\" aria-label=\"filter traces\">\
         <span class=\"muted\"><span id=\"trace-shown\">",
    )?;
    write!(
        out,
        "{}</span> of {} traces · click a column to sort, a row to open its waterfall</span></div>",
        summaries.len(),
        summaries.len()
    )?;
    out.write_str(
        "<div class=\"table-wrap\"><table id=\"trace-table\"><thead><tr>\
         <th data-sort=\"num\" aria-sort=\"ascending\">Started (UTC)</th>\
         <th data-sort=\"text\">Trace</th>\
         <th data-sort=\"text\">Entry</th>\
         <th data-sort=\"num\" class=\"num\">Duration</th>\
         <th data-sort=\"num\">Status</th>\
         <th data-sort=\"num\" class=\"num\">Docs</th>\
         <th data-sort=\"text\">Services</th>\
         </tr></thead><tbody>",
    )?;
    for s in summaries {
        let status = s
            .status
            .map_or_else(|| "–".to_owned(), |code| code.to_string());
        let search = format!(
            "{} {} {} {} {} {}",
            s.id,
            s.entry,
            s.request,
            status,
            s.outcome,
            s.services.join(" ")
        )
        .to_lowercase();
        write!(
            out,
            "<tr class=\"{outcome}\" data-trace=\"trace-{index}\" data-search=\"{}\">\
             <td data-v=\"{start:.6}\">{}</td>\
             <td data-v=\"{id}\"><a href=\"#trace-{index}\" class=\"mono\">{id}</a></td>\
             <td data-v=\"{entry}\">{entry}<span class=\"muted\"> {}</span></td>\
             <td data-v=\"{dur:.3}\" class=\"num\">{}</td>\
             <td data-v=\"{rank}\"><span class=\"badge {outcome}\">{status} {outcome}</span></td>\
             <td data-v=\"{docs}\" class=\"num\">{docs}</td>\
             <td data-v=\"{services}\">{services}</td></tr>",
            esc(&search),
            utc_clock(s.start),
            esc(&s.request),
            s.duration_ms
                .map_or_else(|| "in progress".to_owned(), millis),
            outcome = s.outcome,
            index = s.index,
            start = if s.start.is_finite() { s.start } else { 0.0 },
            id = esc(&s.id),
            entry = esc(&s.entry),
            dur = s.duration_ms.unwrap_or(-1.0),
            rank = s.status_rank(),
            docs = s.documents,
            services = esc(&s.services.join(", ")),
        )?;
    }
    out.write_str("</tbody></table></div>")
}
