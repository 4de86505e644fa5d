//! The service map as inline SVG: one box per node (gateways as pointed boxes, untraced
//! callees dashed) with its request count, p50/p99 and a health strip (ok / error /
//! throttle / fault), one curve per edge with its call count and p50, laid out by
//! [`Layout`].

use std::fmt::{self, Write};

use meshray_core::trace::{MapEdge, Node, NodeKind, ServiceMap, Stats};

use super::format::{esc, millis, opt_millis, percent, truncate};
use super::layout::{Layout, NODE_H, NODE_W};

/// Characters of a node's name shown in its box (the full name is in its tooltip).
const NAME_CHARS: usize = 26;

/// Share of requests from which a node's border or an edge turns the outcome's colour
/// (below it the health strip and the rates show them; a mesh with 1% faults everywhere
/// would otherwise be all red).
pub const ALERT_RATE: f64 = 0.05;

/// The worst outcome among `stats` that reaches [`ALERT_RATE`]: `fault`, `throttle`,
/// `error` or `ok` (CSS class).
pub fn health(stats: &Stats) -> &'static str {
    let alert = |n: u64| n > 0 && stats.rate(n) >= ALERT_RATE;
    if alert(stats.faults) {
        "fault"
    } else if alert(stats.throttles) {
        "throttle"
    } else if alert(stats.errors) {
        "error"
    } else {
        "ok"
    }
}

/// The worst outcome among `stats` at any rate (the colour of the rates text).
fn worst(stats: &Stats) -> &'static str {
    if stats.faults > 0 {
        "fault"
    } else if stats.throttles > 0 {
        "throttle"
    } else if stats.errors > 0 {
        "error"
    } else {
        "ok"
    }
}

/// Writes the map's `<svg>`.
pub fn write_map(out: &mut String, map: &ServiceMap) -> fmt::Result {
    if map.nodes.is_empty() {
        return out.write_str("<p class=\"empty\">No services in this window.</p>");
    }
    let layout = Layout::of(map);
    write!(
        out,
        "<svg id=\"service-map\" class=\"map\" xmlns=\"http://www.w3.org/2000/svg\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" \
         style=\"max-width:{w:.0}px;min-width:min({w:.0}px,1100px)\" role=\"img\" \
         aria-label=\"service map: {} services, {} edges\">",
        map.nodes.len(),
        map.edges.len(),
        w = layout.width,
        h = layout.height,
    )?;
    out.write_str(
        "<defs>\
         <marker id=\"arrow-ok\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"arrow ok\"/></marker>\
         <marker id=\"arrow-error\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"arrow error\"/></marker>\
         <marker id=\"arrow-throttle\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"arrow throttle\"/></marker>\
         <marker id=\"arrow-fault\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerUnits=\"userSpaceOnUse\" markerWidth=\"11\" markerHeight=\"11\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" class=\"arrow fault\"/></marker>\
         </defs>",
    )?;
    let index = |name: &str| map.nodes.iter().position(|n| n.name == name);
    let ports = Ports::of(map, &layout);
    out.write_str("<g class=\"edges\">")?;
    for (at, edge) in map.edges.iter().enumerate() {
        if let (Some(from), Some(to)) = (index(&edge.from), index(&edge.to)) {
            write_edge(out, edge, &layout, &ports, at, from, to)?;
        }
    }
    out.write_str("</g><g class=\"nodes\">")?;
    for (at, node) in map.nodes.iter().enumerate() {
        write_node(out, node, layout.positions[at])?;
    }
    out.write_str("</g></svg>")
}

/// Where each edge leaves its caller and enters its callee: the edges of one side of a
/// node are spread over its height, ordered by the other end's height (fewer crossings).
struct Ports {
    /// Per edge: y offset within the caller's box, y offset within the callee's box.
    offsets: Vec<(f64, f64)>,
}

impl Ports {
    fn of(map: &ServiceMap, layout: &Layout) -> Self {
        let index = |name: &str| map.nodes.iter().position(|n| n.name == name);
        let ends: Vec<Option<(usize, usize)>> = map
            .edges
            .iter()
            .map(|e| Some((index(&e.from)?, index(&e.to)?)))
            .collect();
        let mut offsets = vec![(NODE_H / 2.0, NODE_H / 2.0); map.edges.len()];
        for node in 0..map.nodes.len() {
            let spread = |mut edges: Vec<(usize, f64)>| -> Vec<(usize, f64)> {
                edges.sort_by(|a, b| a.1.total_cmp(&b.1));
                // Edge counts per node are tiny: exact as f64.
                #[allow(clippy::cast_precision_loss)]
                let slots = edges.len() as f64 + 1.0;
                edges
                    .iter()
                    .enumerate()
                    .map(|(k, (edge, _))| {
                        #[allow(clippy::cast_precision_loss)]
                        let k = k as f64 + 1.0;
                        (*edge, 14.0 + (NODE_H - 28.0) * k / slots)
                    })
                    .collect()
            };
            let outgoing: Vec<(usize, f64)> = ends
                .iter()
                .enumerate()
                .filter_map(|(e, ends)| {
                    let (from, to) = (*ends)?;
                    (from == node).then(|| (e, layout.positions[to].1))
                })
                .collect();
            for (edge, y) in spread(outgoing) {
                offsets[edge].0 = y;
            }
            let incoming: Vec<(usize, f64)> = ends
                .iter()
                .enumerate()
                .filter_map(|(e, ends)| {
                    let (from, to) = (*ends)?;
                    (to == node).then(|| (e, layout.positions[from].1))
                })
                .collect();
            for (edge, y) in spread(incoming) {
                offsets[edge].1 = y;
            }
        }
        Self { offsets }
    }
}

fn write_edge(
    out: &mut String,
    edge: &MapEdge,
    layout: &Layout,
    ports: &Ports,
    at: usize,
    from: usize,
    to: usize,
) -> fmt::Result {
    let (fx, fy) = layout.positions[from];
    let (tx, ty) = layout.positions[to];
    let class = health(&edge.stats);
    let forward = layout.layers[to] > layout.layers[from];
    let (path, label_x, label_y) = if from == to {
        // A service calling itself: a small loop above its box.
        let (x, y) = (fx + NODE_W * 0.7, fy);
        (
            format!(
                "M{:.1},{y:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{y:.1}",
                x,
                x,
                y - 40.0,
                x + 40.0,
                y - 40.0,
                x + 30.0
            ),
            x + 20.0,
            y - 34.0,
        )
    } else if forward {
        let (x1, y1) = (fx + NODE_W, fy + ports.offsets[at].0);
        let (x2, y2) = (tx, ty + ports.offsets[at].1);
        let bend = (x2 - x1) / 2.0;
        (
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                x1 + bend,
                x2 - bend
            ),
            (x1 + x2) / 2.0,
            (y1 + y2) / 2.0 - 4.0,
        )
    } else {
        // Back or same-layer call: under the boxes, bottom to bottom.
        let (x1, y1) = (fx + NODE_W / 2.0, fy + NODE_H);
        let (x2, y2) = (tx + NODE_W / 2.0, ty + NODE_H);
        let low = y1.max(y2) + 40.0;
        (
            format!("M{x1:.1},{y1:.1} C{x1:.1},{low:.1} {x2:.1},{low:.1} {x2:.1},{y2:.1}"),
            (x1 + x2) / 2.0,
            low - 6.0,
        )
    };
    let s = &edge.stats;
    write!(
        out,
        "<g class=\"edge {class}{back}\" data-from=\"{}\" data-to=\"{}\" data-calls=\"{}\">\
         <title>{} → {}: {} calls, p50 {}, p99 {}, errors {}, throttles {}, faults {}</title>\
         <path d=\"{path}\" marker-end=\"url(#arrow-{class})\" style=\"stroke-width:{:.1}px\"/>\
         <text x=\"{label_x:.1}\" y=\"{label_y:.1}\" class=\"edge-label\">{} · {}</text></g>",
        esc(&edge.from),
        esc(&edge.to),
        s.count,
        esc(&edge.from),
        esc(&edge.to),
        s.count,
        opt_millis(s.p50_ms),
        opt_millis(s.p99_ms),
        s.errors,
        s.throttles,
        s.faults,
        edge_width(s.count),
        s.count,
        s.p50_ms.map_or_else(|| "–".to_owned(), millis),
        back = if forward { "" } else { " back" },
    )
}

/// Stroke width by call count: 1.5 px, up to 4 px at 10,000 calls.
fn edge_width(count: u64) -> f64 {
    // Counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let log = (count.max(1) as f64).log10();
    (1.5 + log * 0.6).min(4.0)
}

fn write_node(out: &mut String, node: &Node, (x, y): (f64, f64)) -> fmt::Result {
    let s = &node.stats;
    let kind = node.kind.label();
    write!(
        out,
        "<g class=\"node {kind} {}\" data-service=\"{}\" data-requests=\"{}\" \
         transform=\"translate({x:.1},{y:.1})\" tabindex=\"0\">\
         <title>{} ({kind}): {} requests, p50 {}, p99 {}, mean {}; {} errors, {} throttles, {} faults</title>",
        health(s),
        esc(&node.name),
        s.count,
        esc(&node.name),
        s.count,
        opt_millis(s.p50_ms),
        opt_millis(s.p99_ms),
        opt_millis(s.mean_ms),
        s.errors,
        s.throttles,
        s.faults,
    )?;
    let (w, h) = (NODE_W, NODE_H);
    match node.kind {
        NodeKind::Gateway => write!(
            out,
            "<polygon class=\"box\" points=\"14,0 {:.1},0 {w:.1},{:.1} {:.1},{h:.1} 14,{h:.1} 0,{:.1}\"/>",
            w - 14.0,
            h / 2.0,
            w - 14.0,
            h / 2.0
        )?,
        NodeKind::Service | NodeKind::Remote => write!(
            out,
            "<rect class=\"box\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"9\"/>"
        )?,
    }
    let tag = match node.kind {
        NodeKind::Gateway => "GATEWAY",
        NodeKind::Service => "SERVICE",
        NodeKind::Remote => "NOT TRACED",
    };
    write!(
        out,
        "<text x=\"16\" y=\"15\" class=\"node-kind\">{tag}</text>\
         <text x=\"16\" y=\"33\" class=\"node-name\">{}</text>\
         <text x=\"16\" y=\"50\" class=\"node-stats\">{} req · p50 {} · p99 {}</text>",
        esc(&truncate(&node.name, NAME_CHARS)),
        s.count,
        opt_millis(s.p50_ms),
        opt_millis(s.p99_ms),
    )?;
    write_health_strip(out, s)?;
    out.write_str("</g>")
}

/// The strip along the bottom of a node: shares of ok, error (4xx other than 429),
/// throttle and fault requests, and the non-zero rates as text.
fn write_health_strip(out: &mut String, s: &Stats) -> fmt::Result {
    let throttles = s.throttles;
    let errors = s.errors.saturating_sub(s.throttles);
    let faults = s.faults;
    let ok = s.count.saturating_sub(errors + throttles + faults);
    let (x0, width, y) = (16.0, NODE_W - 32.0, NODE_H - 12.0);
    let total = (ok + errors + throttles + faults).max(1);
    let mut x = x0;
    for (part, class) in [
        (ok, "ok"),
        (errors, "error"),
        (throttles, "throttle"),
        (faults, "fault"),
    ] {
        if part == 0 {
            continue;
        }
        // Counts far below 2^52.
        #[allow(clippy::cast_precision_loss)]
        let w = width * part as f64 / total as f64;
        write!(
            out,
            "<rect class=\"strip {class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"5\"/>"
        )?;
        x += w;
    }
    if s.count == 0 {
        write!(
            out,
            "<rect class=\"strip none\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"5\"/>"
        )?;
    }
    let mut rates = Vec::new();
    // As the strip: "error" counts the 4xx other than throttles.
    for (n, label) in [
        (faults, "fault"),
        (throttles, "throttle"),
        (errors, "error"),
    ] {
        if n > 0 {
            rates.push(format!("{} {label}", percent(s.rate(n))));
        }
    }
    if !rates.is_empty() {
        write!(
            out,
            "<text x=\"16\" y=\"{:.1}\" class=\"node-rates {}\">{}</text>",
            NODE_H - 19.0,
            worst(s),
            esc(&rates.join(" · "))
        )?;
    }
    Ok(())
}
