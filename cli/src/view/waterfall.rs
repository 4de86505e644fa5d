//! One trace as a waterfall: every segment and subsegment in tree order (indented by
//! depth), a bar placed on the trace's time axis, its duration and status, and under it
//! the request, the annotations and the causes of a failure.

use std::fmt::{self, Write};

use meshray_core::trace::{Document, Kind, Trace};
use serde_json::Value;

use super::format::{esc, millis, utc};
use super::traces::{TraceSummary, outcome, request_line};

/// Pixels of indentation per tree level.
const INDENT_PX: usize = 14;
/// Deepest indentation drawn (deeper rows stay at this level).
const MAX_INDENT: usize = 12;
/// Names longer than this get a tooltip (the name column may cut them).
const LONG_NAME: usize = 24;
/// Exception messages shown per document.
const MAX_CAUSES: usize = 4;

/// The documents of `trace` in tree order (a document, then its children by start time),
/// with their depth. A document whose parent chain loops is shown at the top level.
pub fn outline(trace: &Trace) -> Vec<(usize, &Document)> {
    let all = trace.all();
    let parent: Vec<Option<usize>> = all
        .iter()
        .map(|doc| {
            let up = trace.parent_of(&doc.id)?;
            all.iter().position(|d| std::ptr::eq(*d, up))
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); all.len()];
    let mut roots = Vec::new();
    for (at, up) in parent.iter().enumerate() {
        match up {
            Some(up) if *up != at => children[*up].push(at),
            _ => roots.push(at),
        }
    }
    let by_start = |list: &mut Vec<usize>| {
        list.sort_by(|a, b| {
            let (a, b) = (all[*a], all[*b]);
            a.start_time
                .unwrap_or(0.0)
                .total_cmp(&b.start_time.unwrap_or(0.0))
        });
    };
    by_start(&mut roots);
    for list in &mut children {
        by_start(list);
    }
    let mut seen = vec![false; all.len()];
    let mut rows = Vec::with_capacity(all.len());
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    loop {
        while let Some((at, depth)) = stack.pop() {
            if seen[at] {
                continue;
            }
            seen[at] = true;
            rows.push((depth, all[at]));
            stack.extend(children[at].iter().rev().map(|&c| (c, depth + 1)));
        }
        // Documents only reachable through a parent cycle.
        match seen.iter().position(|s| !s) {
            Some(at) => stack.push((at, 0)),
            None => break,
        }
    }
    rows
}

/// Writes the waterfall of `trace` as a `<details>` element (open when `open`).
pub fn write_waterfall(
    out: &mut String,
    trace: &Trace,
    summary: &TraceSummary,
    open: bool,
) -> fmt::Result {
    let rows = outline(trace);
    let t0 = summary.start;
    let span_ms = summary
        .duration_ms
        .filter(|ms| *ms > 0.0)
        .unwrap_or(1.0)
        .max(0.001);
    write!(
        out,
        "<details class=\"trace {outcome}\" id=\"trace-{index}\" data-trace-id=\"{id}\"{open}>\
         <summary><span class=\"badge {outcome}\">{status} {outcome}</span> \
         <b>{entry}</b> <span class=\"muted\">{request}</span>\
         <span class=\"right\">{duration} · {docs} documents · {started} UTC · \
         <span class=\"mono\">{id}</span></span></summary>",
        outcome = summary.outcome,
        index = summary.index,
        id = esc(&summary.id),
        open = if open { " open" } else { "" },
        status = summary
            .status
            .map_or_else(|| "–".to_owned(), |s| s.to_string()),
        entry = esc(&summary.entry),
        request = esc(&summary.request),
        duration = summary
            .duration_ms
            .map_or_else(|| "in progress".to_owned(), millis),
        docs = summary.documents,
        started = utc(summary.start),
    )?;
    out.write_str("<div class=\"wf\"><div class=\"r axis\"><div class=\"n\">segment / subsegment</div><div class=\"t\">")?;
    for tick in 0..=4 {
        // Ticks 0..=4.
        let fraction = f64::from(tick) / 4.0;
        write!(
            out,
            "<span class=\"tick\" style=\"left:{:.1}%\">{}</span>",
            fraction * 100.0,
            millis(span_ms * fraction)
        )?;
    }
    out.write_str("</div><div class=\"st\">status</div></div>")?;
    for (depth, doc) in rows {
        write_row(out, doc, depth, t0, span_ms)?;
    }
    out.write_str("</div></details>")
}

fn write_row(out: &mut String, doc: &Document, depth: usize, t0: f64, span_ms: f64) -> fmt::Result {
    let kind = match (doc.kind, doc.is_remote()) {
        (Kind::Segment, _) => "segment",
        (Kind::Subsegment, true) => "remote",
        (Kind::Subsegment, false) => "local",
    };
    let state = outcome([doc]);
    let offset_ms = doc.start_time.map_or(0.0, |start| (start - t0) * 1000.0);
    let left = (offset_ms / span_ms * 100.0).clamp(0.0, 100.0);
    let (width, duration) = match doc.duration_ms() {
        Some(ms) => ((ms / span_ms * 100.0).clamp(0.3, 100.0 - left), millis(ms)),
        None => (100.0 - left, "in progress".to_owned()),
    };
    let width = width.max(0.3);
    // The duration reads right of the bar; a bar reaching the right edge carries it
    // inside, or left of it when the bar is short.
    let label = if left + width <= 80.0 {
        ""
    } else if width >= 15.0 {
        " in"
    } else {
        " before"
    };
    let status = doc
        .http_status
        .map_or_else(|| "–".to_owned(), |s| s.to_string());
    let flags = flag_names(doc);
    // Compact markup (six elements a row; the dot, kind label and duration label are CSS
    // pseudo-elements): a page of 1,000 traces has some 20,000 rows.
    write!(
        out,
        "<div class=\"r {kind} {state}{pending}\" style=\"--i:{indent}px\">\
         <div class=\"n\"{title}>{name}</div>\
         <div class=\"t\"><div class=\"bar {kind} {state}{label}\" style=\"left:{left:.2}%;width:{width:.2}%\" data-d=\"{duration}\"></div></div>\
         <div class=\"st\"><span class=\"badge {state}\">{status}{flags}</span></div></div>",
        pending = if doc.in_progress { " in-progress" } else { "" },
        indent = 8 + depth.min(MAX_INDENT) * INDENT_PX,
        // Long names are cut by the column: the tooltip has the whole line.
        title = if doc.name.chars().count() > LONG_NAME {
            format!(" title=\"{}\"", esc(&doc.summary_line()))
        } else {
            String::new()
        },
        name = esc(&doc.name),
    )?;
    write_details(out, doc, depth)
}

/// `error`/`throttle`/`fault`/`in progress` as badge text.
fn flag_names(doc: &Document) -> String {
    let mut flags = String::new();
    for (set, name) in [
        (doc.fault, " fault"),
        (doc.throttle, " throttle"),
        (doc.error && !doc.throttle, " error"),
        (doc.in_progress, " in progress"),
    ] {
        if set {
            flags.push_str(name);
        }
    }
    flags
}

/// The line under a row: request, annotations, causes (nothing when there is none).
fn write_details(out: &mut String, doc: &Document, depth: usize) -> fmt::Result {
    let request = if doc.kind == Kind::Segment {
        request_line(doc)
    } else {
        String::new()
    };
    let annotations = doc.annotations();
    let causes = causes(doc);
    if request.is_empty() && annotations.is_empty() && causes.is_empty() {
        return Ok(());
    }
    write!(
        out,
        "<div class=\"dt\" style=\"--i:{}px\">",
        24 + depth.min(MAX_INDENT) * INDENT_PX
    )?;
    if !request.is_empty() {
        write!(out, "<span class=\"req mono\">{}</span>", esc(&request))?;
    }
    for (key, value) in &annotations {
        write!(
            out,
            "<span class=\"ann\">{}={}</span>",
            esc(key),
            esc(value)
        )?;
    }
    for cause in &causes {
        write!(out, "<span class=\"cause\">{}</span>", esc(cause))?;
    }
    out.write_str("</div>")
}

/// The messages of `cause.exceptions` (at most [`MAX_CAUSES`]).
fn causes(doc: &Document) -> Vec<String> {
    doc.raw
        .pointer("/cause/exceptions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .take(MAX_CAUSES)
        .map(str::to_owned)
        .collect()
}
