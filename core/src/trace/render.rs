//! The text form of a trace: an indented tree, one document per line, as the demo and
//! `meshray traces` print it and as test failures show it.

use super::tree::{Flat, Trace};

impl Trace {
    /// The trace as an indented tree, one document per line.
    pub fn render(&self) -> String {
        let flat = self.flat();
        let (children, roots) = flat.children_and_roots();
        let mut out = format!("trace {} ({} documents)\n", self.id, self.documents.len());
        let mut visited = vec![false; flat.nodes.len()];
        for (i, root) in roots.iter().enumerate() {
            let last = i + 1 == roots.len();
            render_node(&flat, &children, *root, "", last, &mut visited, &mut out);
        }
        out
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

#[cfg(test)]
mod tests {
    use crate::trace::tree::tests::{bookinfo, parse};

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
}
