//! The paths Istio's rule list uses (`x-kubernetes-rules.json`): `.spec.url`,
//! `[*]` for every item of a list, `{*}` for every value of a map, e.g.
//! `.spec.selector.matchLabels{*}` or `.spec.match[*].ports`.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `.name`: a field.
    Field(String),
    /// `[*]`: every list item.
    Items,
    /// `{*}`: every map value.
    Values,
}

fn steps(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[*]") {
            steps.push(Step::Items);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("{*}") {
            steps.push(Step::Values);
            rest = after;
        } else {
            let field = rest.strip_prefix('.').unwrap_or(rest);
            let end = field.find(['.', '[', '{']).unwrap_or(field.len());
            steps.push(Step::Field(field[..end].to_owned()));
            rest = &field[end..];
        }
    }
    steps
}

/// Every value at `path` in `root` that is present, with its JSON pointer
/// (`/spec/match/0/ports`). Absent fields select nothing: rules apply to what is set.
pub fn select<'a>(root: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let mut current = vec![(String::new(), root)];
    for step in steps(path) {
        let mut next = Vec::new();
        for (pointer, value) in current {
            match (&step, value) {
                (Step::Field(name), Value::Object(map)) => {
                    if let Some(child) = map.get(name) {
                        next.push((format!("{pointer}/{}", escape(name)), child));
                    }
                }
                (Step::Items, Value::Array(items)) => {
                    next.extend(
                        items
                            .iter()
                            .enumerate()
                            .map(|(i, item)| (format!("{pointer}/{i}"), item)),
                    );
                }
                (Step::Values, Value::Object(map)) => {
                    next.extend(
                        map.iter()
                            .map(|(key, item)| (format!("{pointer}/{}", escape(key)), item)),
                    );
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// JSON pointer escaping (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_items_and_values_are_selected() {
        let doc = json!({"spec": {"match": [{"ports": [1]}, {"mode": "SERVER"}, {"ports": [2]}],
                                  "selector": {"matchLabels": {"a/b": "x", "c": "y"}}}});
        let ports: Vec<_> = select(&doc, ".spec.match[*].ports")
            .into_iter()
            .map(|(p, v)| (p, v.clone()))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("/spec/match/0/ports".into(), json!([1])),
                ("/spec/match/2/ports".into(), json!([2]))
            ]
        );
        let labels: Vec<_> = select(&doc, ".spec.selector.matchLabels{*}")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            labels,
            vec![
                "/spec/selector/matchLabels/a~1b",
                "/spec/selector/matchLabels/c"
            ]
        );
    }

    #[test]
    fn absent_fields_and_wrong_shapes_select_nothing() {
        let doc = json!({"spec": {"url": 5}});
        assert!(select(&doc, ".spec.vmConfig.env[*]").is_empty());
        assert!(select(&doc, ".spec.url[*]").is_empty());
        assert_eq!(select(&doc, ".spec").len(), 1);
    }
}
