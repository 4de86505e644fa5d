//! The page generated from fixed documents (`tests/fixtures/bookinfo.json`: four
//! gateway → productpage → reviews → ratings traces, one with a fault, one throttled, one
//! with markup in an annotation), checked for its structure.

use meshray_core::trace::{ServiceMap, Trace};

use super::*;

const FIXTURE: &str = include_str!("../../tests/fixtures/bookinfo.json");

fn fixture_traces() -> Vec<Trace> {
    crate::saved::traces_from_json(FIXTURE).unwrap()
}

fn page_html(traces: &[Trace]) -> String {
    let map = ServiceMap::from_traces(traces);
    render(&Page {
        source: "X-Ray API at http://127.0.0.1:5000 (us-east-1)",
        from: 1_796_122_900.0,
        to: 1_796_123_200.0,
        traces,
        map: &map,
        map_source: MapSource::Documents,
        listed: traces.len(),
    })
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The text of the element that follows `marker` (up to the next `<`).
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"))
        + marker.len();
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let end = rest[open..].find('<').unwrap();
    &rest[open..open + end]
}

#[test]
fn map_has_a_node_per_service_and_an_edge_per_call_pair() {
    let html = page_html(&fixture_traces());
    assert_eq!(count(&html, "<g class=\"node "), 4, "nodes");
    assert_eq!(
        count(&html, "<g class=\"node gateway "),
        1,
        "the gateway is drawn apart"
    );
    assert!(html.contains("<polygon class=\"box\""), "gateway shape");
    for service in ["istio-ingressgateway", "productpage", "reviews", "ratings"] {
        assert!(
            html.contains(&format!("class=\"node-name\">{service}</text>")),
            "label {service}"
        );
    }
    assert_eq!(count(&html, "<g class=\"edge "), 3, "edges");
    for (from, to) in [
        ("istio-ingressgateway", "productpage"),
        ("productpage", "reviews"),
        ("reviews", "ratings"),
    ] {
        assert!(
            html.contains(&format!(
                "data-from=\"{from}\" data-to=\"{to}\" data-calls=\"4\""
            )),
            "edge {from} → {to} with 4 calls"
        );
    }
    // Counts and rates on the nodes: ratings served 4 requests, 1 fault, 1 throttle.
    assert!(html.contains("data-service=\"ratings\" data-requests=\"4\""));
    let ratings = &html[html.find("data-service=\"ratings\"").unwrap()..];
    let ratings = &ratings[..ratings.find("</g>").unwrap()];
    assert!(ratings.contains("4 req · p50 "), "{ratings}");
    assert!(
        ratings.contains(">25% fault · 25% throttle</text>"),
        "{ratings}"
    );
    assert_eq!(
        count(ratings, "class=\"strip "),
        3,
        "ok, throttle and fault shares"
    );
    // The reviews → ratings edge is red (it carried a fault) and labelled count · p50.
    assert!(html.contains("<g class=\"edge fault\" data-from=\"reviews\" data-to=\"ratings\""));
}

#[test]
fn every_trace_has_a_row_and_a_waterfall_with_a_bar_per_document() {
    let traces = fixture_traces();
    let html = page_html(&traces);
    assert_eq!(count(&html, "<tr class=\""), 4, "trace rows");
    assert_eq!(count(&html, "<details class=\"trace "), 4, "waterfalls");
    assert_eq!(count(&html, " open>"), 3, "the first three open");
    // 7 top-level documents + 1 embedded subsegment per trace.
    assert_eq!(count(&html, "<div class=\"bar "), 4 * 8, "bars");
    assert_eq!(count(&html, "<div class=\"bar segment "), 4 * 4);
    assert_eq!(count(&html, "<div class=\"bar remote "), 4 * 3);
    assert_eq!(count(&html, "<div class=\"bar local "), 4);
    // Tree order and depth: gateway, its call, productpage, … ratings at depth 6.
    let first = &html[html.find("id=\"trace-0\"").unwrap()..];
    let first = &first[..first.find("</details>").unwrap()];
    let names: Vec<&str> = first
        .split("<div class=\"n\">")
        .skip(2)
        .map(|row| &row[..row.find('<').unwrap()])
        .collect();
    assert_eq!(
        names,
        [
            "istio-ingressgateway",
            "productpage",
            "productpage",
            "reviews",
            "reviews",
            "ratings",
            "ratings",
            "render"
        ]
    );
    assert!(
        first.contains("<div class=\"r segment ok\" style=\"--i:92px\"><div class=\"n\">ratings<")
    );
    // The root segment's bar spans the whole axis; ratings' starts 11 ms into 60 ms.
    assert!(first.contains("style=\"left:0.00%;width:100.00%\""));
    assert!(
        first.contains("style=\"left:18.33%;width:36.67%\""),
        "{first}"
    );
    // Durations, statuses and annotations.
    assert!(first.contains("data-d=\"22.0 ms\""));
    assert!(first.contains("<span class=\"ann\">istio_namespace=default"));
    let fault = &html[html.find("id=\"trace-1\"").unwrap()..];
    assert!(
        fault.starts_with(
            "id=\"trace-1\" data-trace-id=\"1-6a0f0001-0123456789abcdef01230001\" open>"
        )
    );
    assert!(fault.contains("<span class=\"badge fault\">503 fault</span>"));
    assert!(fault.contains(
        "<span class=\"cause\">upstream connect error or disconnect/reset before headers (UF)</span>"
    ));
    assert!(html.contains("<span class=\"badge throttle\">429 throttle</span>"));
}

#[test]
fn the_list_sorts_by_duration_and_status_keys() {
    let html = page_html(&fixture_traces());
    assert!(html.contains("<th data-sort=\"num\" class=\"num\">Duration</th>"));
    assert!(html.contains("<th data-sort=\"num\">Status</th>"));
    // Status key: outcome rank × 1000 + HTTP status of the root.
    assert!(html.contains("<td data-v=\"3503\"><span class=\"badge fault\">503 fault</span>"));
    assert!(
        html.contains("<td data-v=\"2200\"><span class=\"badge throttle\">200 throttle</span>")
    );
    assert!(html.contains("<td data-v=\"0200\">") || html.contains("<td data-v=\"200\">"));
    // Duration key in ms: trace 0 lasts 60 ms.
    assert!(html.contains("<td data-v=\"60.000\" class=\"num\">60.0 ms</td>"));
    assert_eq!(text_after(&html, "<span id=\"trace-shown\""), "4");
}

#[test]
fn network_text_is_escaped_and_nothing_is_loaded() {
    let html = page_html(&fixture_traces());
    assert!(!html.contains("<script>alert"));
    assert!(
        html.contains("<span class=\"ann\">user=&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")
    );
    assert_eq!(
        count(&html, "<script>"),
        2,
        "the error probe and the page script"
    );
    for external in [" src=", "<link", "@import", "url(http", "href=\"http"] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(html.contains("Content-Security-Policy\" content=\"default-src 'none'"));
}

#[test]
fn hostile_names_stay_text() {
    let mut traces = fixture_traces();
    let evil = "</text><script>x()</script>\"'&";
    for doc in &mut traces[0].documents {
        if doc.name == "ratings" {
            doc.name = evil.to_owned();
        }
    }
    let html = page_html(&traces);
    assert!(!html.contains(evil));
    assert!(!html.contains("<script>x()"));
    assert!(html.contains("&lt;/text&gt;&lt;script&gt;x()&lt;/script&gt;&quot;&#39;&amp;"));
}

#[test]
fn the_page_is_a_pure_function_of_the_documents() {
    let traces = fixture_traces();
    assert_eq!(page_html(&traces), page_html(&traces));
    let empty = page_html(&[]);
    assert!(empty.contains("No services in this window."));
    assert!(empty.contains("No traces in this window."));
}
