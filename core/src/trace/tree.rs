//! The documents of one trace as a tree.
//!
//! [`Trace`] holds the top-level documents (segments and independent subsegments); the
//! tree links each document to the one that encloses it (embedded subsegments) or, for
//! independent documents, to the one its `parent_id` names. [`Trace::structure_problems`]
//! lists what breaks that tree: bad or duplicate ids, a `parent_id` that resolves to
//! nothing, a trace id that is not X-Ray's, impossible times.

use std::collections::HashMap;

use super::document::{Document, DocumentParseError, Kind, is_span_id, is_xray_trace_id};

/// All documents of one trace.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The X-Ray trace id.
    pub id: String,
    /// The top-level documents (segments and independent subsegments), by start time.
    pub documents: Vec<Document>,
}

/// The documents of a trace flattened (embedded ones included) with their tree links.
pub(crate) struct Flat<'a> {
    /// Every document, depth first.
    pub(crate) nodes: Vec<&'a Document>,
    /// Parent of each node: the enclosing document, else the one its `parent_id` names.
    pub(crate) parent: Vec<Option<usize>>,
    /// Nodes whose `parent_id` names no document of the trace.
    pub(crate) unresolved: Vec<usize>,
    /// Ids that occur more than once.
    pub(crate) duplicates: Vec<String>,
}

impl Flat<'_> {
    /// The children of each node and the roots, each list by start time, then name.
    pub(crate) fn children_and_roots(&self) -> (Vec<Vec<usize>>, Vec<usize>) {
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        let mut roots = Vec::new();
        for (at, parent) in self.parent.iter().enumerate() {
            match parent {
                Some(p) => children[*p].push(at),
                None => roots.push(at),
            }
        }
        let by_start = |list: &mut Vec<usize>| {
            list.sort_by(|a, b| {
                let (a, b) = (self.nodes[*a], self.nodes[*b]);
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
        (children, roots)
    }
}

impl Trace {
    /// Parses the documents of trace `id` (an empty `id` takes the first document's).
    ///
    /// # Errors
    /// [`DocumentParseError`] when a document is not a JSON object.
    pub fn parse<'a>(
        id: &str,
        documents: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, DocumentParseError> {
        let documents = documents
            .into_iter()
            .map(Document::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_documents(id, documents))
    }

    /// The trace of `documents` (sorted here by start time); an empty `id` takes the first
    /// document's `trace_id`.
    pub fn from_documents(id: &str, mut documents: Vec<Document>) -> Self {
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
        Self { id, documents }
    }

    /// The earliest `start_time` of its documents.
    pub fn start_time(&self) -> f64 {
        self.documents
            .iter()
            .filter_map(|d| d.start_time)
            .fold(f64::INFINITY, f64::min)
    }

    /// The latest `end_time` of its documents (embedded ones included), if any has one.
    pub fn end_time(&self) -> Option<f64> {
        self.all()
            .into_iter()
            .filter_map(|d| d.end_time)
            .reduce(f64::max)
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

    /// The root segment: the earliest segment whose `parent_id` names no document of the
    /// trace (what the X-Ray console's trace list shows), else the earliest segment.
    pub fn root_segment(&self) -> Option<&Document> {
        let flat = self.flat();
        flat.nodes
            .iter()
            .enumerate()
            .find(|(at, d)| d.kind == Kind::Segment && flat.parent[*at].is_none())
            .map(|(_, d)| *d)
            .or_else(|| self.segments().into_iter().next())
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

    /// What is structurally wrong with the trace; empty when every id is well-formed and
    /// unique, every `parent_id` resolves, and times are sane. A segment whose `parent_id`
    /// is one of `external` may point outside the trace: the span of a caller traced by
    /// someone else (a Zipkin- or W3C-instrumented client), which X-Ray accepts as a
    /// segment's parent.
    pub fn structure_problems(&self, external: &[&str]) -> Vec<String> {
        let flat = self.flat();
        let mut problems = Vec::new();
        if !is_xray_trace_id(&self.id) {
            problems.push(format!("trace id {:?} is not 1-<8 hex>-<24 hex>", self.id));
        }
        for doc in &self.documents {
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

    /// The flattened documents with their parents.
    pub(crate) fn flat(&self) -> Flat<'_> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::Edge;
    use serde_json::{Value, json};

    pub(crate) const TRACE: &str = "1-6563a1b2-0123456789abcdef01234567";

    pub(crate) fn doc(value: Value) -> String {
        value.to_string()
    }

    /// productpage → reviews → ratings as the filter ships it: 3 segments and 2 independent
    /// remote subsegments.
    pub(crate) fn bookinfo() -> Vec<String> {
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

    pub(crate) fn parse(docs: &[String]) -> Trace {
        Trace::parse(TRACE, docs.iter().map(String::as_str)).unwrap()
    }

    #[test]
    fn linked_trace_has_no_problems() {
        let trace = parse(&bookinfo());
        assert!(
            trace.structure_problems(&[]).is_empty(),
            "{:?}",
            trace.structure_problems(&[])
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
        assert_eq!(trace.root_segment().unwrap().name, "productpage");
        assert_eq!(trace.end_time(), Some(100.030));
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
        let problems = trace.structure_problems(&[]).join("\n");
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
        let external = trace.structure_problems(&["ffffffffffffffff"]).join("\n");
        assert!(
            !external.contains("parent_id ffffffffffffffff"),
            "{external}"
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
        assert!(!trace.structure_problems(&[]).is_empty());
        assert!(trace.render().lines().count() >= 3);
        assert!(trace.enclosing_segment("a000000000000001").is_some());
    }
}
