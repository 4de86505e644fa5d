//! `meshray view`'s page: one self-contained HTML file (inline SVG, CSS and script; a
//! Content-Security-Policy that allows no network at all) with the service map, a
//! sortable list of the traces and a waterfall per trace.
//!
//! [`render`] is a pure function of the documents (and the map): no clock, no I/O, so the
//! tests check the page generated from fixed documents. Everything that came from the
//! network (names, URLs, annotations, causes, ids) goes through [`format::esc`]; the
//! script reads nothing but the page's own attributes.
//!
//! The page is written with `write!` into a `String` rather than a template engine: the
//! markup is a few fixed fragments around loops, the compiler checks every argument, and
//! no template dependency (askama's proc macros, tera's runtime parser) is built for it.
//!
//! # Layout
//! - [`layout`]: the layered placement of the map's nodes (left to right by call depth).
//! - [`map_svg`]: the map as SVG.
//! - [`traces`]: the trace list and the per-trace summary.
//! - [`waterfall`]: one trace's segments and subsegments on a time axis.
//! - [`format`]: escaping and number/time formats.
//! - `page.css`, `page.js`: the inline style and script.

pub mod format;
pub mod layout;
pub mod map_svg;
pub mod traces;
pub mod waterfall;

use std::fmt::{self, Write};

use meshray_core::trace::{NodeKind, ServiceMap, Trace};

use crate::service_graph::MapSource;
use format::{esc, opt_millis, utc};
use traces::TraceSummary;

/// The inline style.
const CSS: &str = include_str!("page.css");
/// The inline script (sorting, filtering, opening waterfalls).
const SCRIPT: &str = include_str!("page.js");
/// Waterfalls open when the page loads (the first traces).
const OPEN_WATERFALLS: usize = 3;
/// Counts page errors onto `<html data-js-errors>` before anything else runs, so a
/// headless browser's DOM dump shows whether the page's script failed.
const ERROR_PROBE: &str = "(function(){var n=0,r=document.documentElement;\
function note(){n++;r.setAttribute('data-js-errors',String(n));}\
window.addEventListener('error',note,true);\
window.addEventListener('unhandledrejection',note);\
var ce=console.error;console.error=function(){note();return ce.apply(console,arguments);};})();";

/// What the page shows.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    /// Where the data came from, e.g. `X-Ray API at http://127.0.0.1:5000 (us-east-1)`.
    pub source: &'a str,
    /// Start of the time window, epoch seconds.
    pub from: f64,
    /// End of the time window, epoch seconds.
    pub to: f64,
    /// The traces, oldest first.
    pub traces: &'a [Trace],
    /// The service map.
    pub map: &'a ServiceMap,
    /// Where the map came from.
    pub map_source: MapSource,
    /// Traces the API listed in the window (more than shown when a limit applied).
    pub listed: usize,
}

/// The page as HTML.
pub fn render(page: &Page<'_>) -> String {
    let mut out = String::with_capacity(4096 + page.traces.len() * 4096);
    // Writing into a String cannot fail.
    write_page(&mut out, page).unwrap_or(());
    out
}

fn write_page(out: &mut String, page: &Page<'_>) -> fmt::Result {
    let summaries: Vec<TraceSummary> = page
        .traces
        .iter()
        .enumerate()
        .map(|(at, trace)| TraceSummary::of(at, trace))
        .collect();
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\" data-js-errors=\"0\" data-js=\"loading\">\
         <head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"meshray view {version}\">\
         <title>meshray · {traces} traces · {from} – {to} UTC</title>\
         <script>{ERROR_PROBE}</script><style>{CSS}</style></head><body>",
        version = env!("CARGO_PKG_VERSION"),
        traces = page.traces.len(),
        from = utc(page.from),
        to = format::utc_clock(page.to),
    )?;
    write_header(out, page, &summaries)?;
    write!(
        out,
        "<section id=\"map\"><h2>Service map <span class=\"muted\">{} services · {} edges · {}</span></h2>\
         <div class=\"map-wrap\">",
        page.map.nodes.len(),
        page.map.edges.len(),
        esc(page.map_source.describe()),
    )?;
    map_svg::write_map(out, page.map)?;
    out.write_str(
        "</div><div class=\"legend\">\
         <span><i class=\"sw ok\"></i>ok</span><span><i class=\"sw error\"></i>error (4xx)</span>\
         <span><i class=\"sw throttle\"></i>throttle (429)</span><span><i class=\"sw fault\"></i>fault (5xx)</span>\
         <span><i class=\"shape gateway\"></i>gateway</span><span><i class=\"shape service\"></i>service</span>\
         <span><i class=\"shape remote\"></i>called, not traced</span>\
         <span class=\"muted\">edges: calls · p50 as the caller measured them; click a service to filter the traces</span>\
         </div></section>",
    )?;
    out.write_str("<section id=\"traces\"><h2>Traces</h2>")?;
    if summaries.is_empty() {
        out.write_str("<p class=\"empty\">No traces in this window.</p>")?;
    } else {
        traces::write_list(out, &summaries)?;
    }
    out.write_str("</section><section id=\"waterfalls\"><h2>Waterfalls <span class=\"muted\">one per trace; segments (services) and subsegments (their calls) on the trace's time axis</span></h2>")?;
    for (trace, summary) in page.traces.iter().zip(&summaries) {
        waterfall::write_waterfall(out, trace, summary, summary.index < OPEN_WATERFALLS)?;
    }
    writeln!(
        out,
        "</section><footer class=\"muted\">Generated by meshray view from {}. Self-contained: \
         nothing is loaded from the network.</footer><script>{SCRIPT}</script></body></html>",
        esc(page.source)
    )
}

fn write_header(out: &mut String, page: &Page<'_>, summaries: &[TraceSummary]) -> fmt::Result {
    let mut durations: Vec<f64> = summaries.iter().filter_map(|s| s.duration_ms).collect();
    durations.sort_by(f64::total_cmp);
    let faults = summaries.iter().filter(|s| s.outcome == "fault").count();
    let failed = summaries.iter().filter(|s| s.outcome != "ok").count();
    let gateways = page
        .map
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Gateway)
        .count();
    let documents: usize = page.traces.iter().map(|t| t.all().len()).sum();
    let shown = if page.listed > page.traces.len() {
        format!(
            "{} of {} listed (the most recent)",
            page.traces.len(),
            page.listed
        )
    } else {
        page.traces.len().to_string()
    };
    write!(
        out,
        "<header><div class=\"brand\">meshray <span>view</span></div>\
         <div class=\"window\">{from} → {to} UTC · {minutes} · {source}</div></header>\
         <div class=\"cards\">\
         <div class=\"card\"><div class=\"v\">{shown}</div><div class=\"k\">traces</div></div>\
         <div class=\"card\"><div class=\"v\">{documents}</div><div class=\"k\">segments &amp; subsegments</div></div>\
         <div class=\"card\"><div class=\"v\">{services}</div><div class=\"k\">services ({gateways} gateway{gs})</div></div>\
         <div class=\"card {fault_class}\"><div class=\"v\">{faults}</div><div class=\"k\">traces with a fault · {failed} not ok</div></div>\
         <div class=\"card\"><div class=\"v\">{p50}</div><div class=\"k\">trace p50</div></div>\
         <div class=\"card\"><div class=\"v\">{p99}</div><div class=\"k\">trace p99</div></div>\
         </div>",
        from = utc(page.from),
        to = format::utc_clock(page.to),
        minutes = format::span(page.to - page.from),
        source = esc(page.source),
        services = page.map.nodes.len(),
        gs = if gateways == 1 { "" } else { "s" },
        fault_class = if faults > 0 { "fault" } else { "" },
        p50 = opt_millis(meshray_core::trace::map::percentile(&durations, 50.0)),
        p99 = opt_millis(meshray_core::trace::map::percentile(&durations, 99.0)),
    )
}

#[cfg(test)]
mod tests;
