//! The page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `make tools`) loads the page written from documents, a screenshot goes to
//! `target/meshray-view/`, and the DOM after the page's script ran (`--dump-dom`) must show
//! the node labels and waterfall bars, the script finished (`data-js="ready"`) and no error
//! was logged (`data-js-errors="0"`, counted by the page's own probe).

mod common;

use common::{bookinfo, chromium, generated, is_png, out_dir, page, root_attribute};
use meshray_core::trace::ServiceMap;

#[test]
fn bookinfo_page_renders_in_chromium_without_errors() {
    let dir = out_dir();
    let html_path = dir.join("bookinfo.html");
    std::fs::write(&html_path, page(&bookinfo())).unwrap();

    let dom = chromium(&html_path, &["--dump-dom"]).stdout;
    assert_eq!(
        root_attribute(&dom, "data-js"),
        Some("ready"),
        "script ran to its end"
    );
    assert_eq!(
        root_attribute(&dom, "data-js-errors"),
        Some("0"),
        "no page errors"
    );
    assert_eq!(
        root_attribute(&dom, "data-rows"),
        Some("4"),
        "the script saw 4 trace rows"
    );
    for service in ["istio-ingressgateway", "productpage", "reviews", "ratings"] {
        assert!(
            dom.contains(&format!("class=\"node-name\">{service}</text>")),
            "node label {service} in the rendered DOM"
        );
    }
    assert_eq!(
        dom.matches("<div class=\"bar ").count(),
        32,
        "waterfall bars"
    );
    assert_eq!(dom.matches("<g class=\"edge ").count(), 3, "edges");
    // The annotation with markup stayed text in the browser too.
    assert!(!dom.contains("<script>alert"));

    let png = dir.join("bookinfo.png");
    std::fs::remove_file(&png).ok();
    chromium(
        &html_path,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1440,1900",
        ],
    );
    assert!(is_png(&png, 10_000), "screenshot {}", png.display());
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn the_error_probe_reports_a_failing_script() {
    let dir = out_dir();
    let html_path = dir.join("broken.html");
    let html = page(&bookinfo()).replace(
        "</body>",
        "<script>console.error('seen');null.boom();</script></body>",
    );
    std::fs::write(&html_path, html).unwrap();
    let dom = chromium(&html_path, &["--dump-dom"]).stdout;
    assert_eq!(
        root_attribute(&dom, "data-js-errors"),
        Some("2"),
        "console.error and a TypeError"
    );
}

/// 30 services, 1,000 traces: the page stays usable (checked structure, rendered without
/// errors). Prints the file size and render times (not asserted: the machine is shared).
#[test]
fn thirty_services_and_a_thousand_traces() {
    let traces = generated(1000, 1_796_123_000.0);
    let map = ServiceMap::from_traces(&traces);
    assert_eq!(map.nodes.len(), 30, "every generated service appears");
    let html = page(&traces);
    assert_eq!(html.matches("<g class=\"node ").count(), 30);
    assert_eq!(html.matches("<g class=\"edge ").count(), map.edges.len());
    assert_eq!(html.matches("<tr class=\"").count(), 1000);
    assert_eq!(html.matches("<details class=\"trace ").count(), 1000);
    let documents: usize = traces.iter().map(|t| t.all().len()).sum();
    assert_eq!(html.matches("<div class=\"bar ").count(), documents);

    let dir = out_dir();
    let html_path = dir.join("scale-30x1000.html");
    std::fs::write(&html_path, &html).unwrap();
    let small_path = dir.join("scale-baseline.html");
    std::fs::write(&small_path, page(&bookinfo())).unwrap();

    let baseline = chromium(&small_path, &["--dump-dom"]);
    let run = chromium(&html_path, &["--dump-dom"]);
    let dom = &run.stdout;
    assert_eq!(root_attribute(dom, "data-js"), Some("ready"));
    assert_eq!(root_attribute(dom, "data-js-errors"), Some("0"));
    assert_eq!(root_attribute(dom, "data-rows"), Some("1000"));
    assert_eq!(dom.matches("class=\"node-name\">").count(), 30);

    let png = dir.join("scale-30x1000.png");
    std::fs::remove_file(&png).ok();
    chromium(
        &html_path,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1440,1900",
        ],
    );
    assert!(is_png(&png, 10_000));
    let report = format!(
        "30 services, 1000 traces, {documents} documents, {} edges: page {} bytes ({:.1} MB); \
         chromium --dump-dom {:.2} s (the 4-trace page: {:.2} s); page script ready at {} ms \
         after navigation start (4-trace page: {} ms); screenshot {}\n",
        map.edges.len(),
        html.len(),
        html.len() as f64 / 1e6,
        run.took.as_secs_f64(),
        baseline.took.as_secs_f64(),
        root_attribute(dom, "data-ready-ms").unwrap_or("?"),
        root_attribute(&baseline.stdout, "data-ready-ms").unwrap_or("?"),
        png.display(),
    );
    std::fs::write(dir.join("scale-30x1000.txt"), &report).unwrap();
    eprintln!("{report}");
}
