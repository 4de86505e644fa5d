//! Where the service map's nodes go: a layered layout, left to right by call depth.
//!
//! 1. Cycles are broken by a depth-first walk from the entry points (nodes nobody calls,
//!    gateways first); an edge back to a node still on the walk's stack is left out of the
//!    layering (it is drawn as a loop below the nodes).
//! 2. Each node's layer is its longest call path from an entry point, so a callee is
//!    always to the right of every caller, and services that are only called by deep ones
//!    sit deep.
//! 3. Within a layer, nodes are ordered by a few sweeps of the barycenter heuristic (mean
//!    position of their callers, then of their callees), which keeps the lines of one
//!    call chain together and crossings few.
//!
//! Hand-written (about a hundred lines) instead of a graph-layout dependency: the map is a
//! mostly acyclic call graph of tens of services, which this handles readably.

use std::collections::HashMap;

use meshray_core::trace::{NodeKind, ServiceMap};

/// Width of a node box.
pub const NODE_W: f64 = 210.0;
/// Height of a node box.
pub const NODE_H: f64 = 84.0;
/// Horizontal gap between layers (room for edge labels).
pub const COL_GAP: f64 = 120.0;
/// Vertical gap between nodes of one layer.
pub const ROW_GAP: f64 = 26.0;
/// Margin around the drawing (room for loops below).
pub const MARGIN: f64 = 24.0;
/// Barycenter sweeps (down and up each).
const SWEEPS: usize = 4;

/// The placed map: one position per node of [`ServiceMap::nodes`], same order.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Top-left corner of each node.
    pub positions: Vec<(f64, f64)>,
    /// The layer (column) of each node.
    pub layers: Vec<usize>,
    /// Edges (`from`, `to` node indexes) left out of the layering because they close a
    /// cycle or stay within a layer.
    pub back_edges: Vec<(usize, usize)>,
    /// Width of the drawing.
    pub width: f64,
    /// Height of the drawing (loops below included).
    pub height: f64,
}

impl Layout {
    /// Lays out `map`.
    pub fn of(map: &ServiceMap) -> Self {
        let n = map.nodes.len();
        let index: HashMap<&str, usize> = map
            .nodes
            .iter()
            .enumerate()
            .map(|(at, node)| (node.name.as_str(), at))
            .collect();
        let mut successors: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut called = vec![false; n];
        for edge in &map.edges {
            if let (Some(&from), Some(&to)) =
                (index.get(edge.from.as_str()), index.get(edge.to.as_str()))
                && from != to
                && !successors[from].contains(&to)
            {
                successors[from].push(to);
                called[to] = true;
            }
        }
        let (dag, order, back_edges) = break_cycles(map, &successors, &called);
        let layers = longest_path_layers(&dag, &order);
        let columns = order_columns(&dag, &layers, &order);
        let tallest = columns.iter().map(Vec::len).max().unwrap_or(0);
        let column_height = |count: usize| {
            // Node counts are tiny: exact as f64.
            #[allow(clippy::cast_precision_loss)]
            let count = count as f64;
            (count * (NODE_H + ROW_GAP) - ROW_GAP).max(0.0)
        };
        let body = column_height(tallest);
        let mut positions = vec![(0.0, 0.0); n];
        for (layer, column) in columns.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let x = MARGIN + layer as f64 * (NODE_W + COL_GAP);
            let top = MARGIN + (body - column_height(column.len())) / 2.0;
            for (row, &node) in column.iter().enumerate() {
                #[allow(clippy::cast_precision_loss)]
                let y = top + row as f64 * (NODE_H + ROW_GAP);
                positions[node] = (x, y);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let width = MARGIN * 2.0 + columns.len() as f64 * (NODE_W + COL_GAP) - COL_GAP;
        let loops = if back_edges.is_empty() { 0.0 } else { 48.0 };
        Self {
            positions,
            layers,
            back_edges,
            width: width.max(NODE_W + 2.0 * MARGIN),
            height: MARGIN * 2.0 + body + loops,
        }
    }
}

/// What [`break_cycles`] finds: the acyclic part of the graph (successor lists), the
/// walk order, and the edges left out.
type Acyclic = (Vec<Vec<usize>>, Vec<usize>, Vec<(usize, usize)>);

/// The acyclic part of the graph, the walk order, and the edges left out.
fn break_cycles(map: &ServiceMap, successors: &[Vec<usize>], called: &[bool]) -> Acyclic {
    let n = successors.len();
    let mut starts: Vec<usize> = (0..n).collect();
    // Entry points first (gateways before services), then the rest, by name.
    starts.sort_by_key(|&at| {
        (
            called[at],
            map.nodes[at].kind != NodeKind::Gateway,
            map.nodes[at].name.as_str(),
        )
    });
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut dag: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut back = Vec::new();
    let mut order = Vec::new();
    for start in starts {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative depth-first walk: (node, next successor to look at).
        let mut stack = vec![(start, 0)];
        mark[start] = Mark::OnStack;
        order.push(start);
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            if let Some(&to) = successors[node].get(top.1) {
                top.1 += 1;
                match mark[to] {
                    Mark::OnStack => back.push((node, to)),
                    Mark::Done => dag[node].push(to),
                    Mark::New => {
                        dag[node].push(to);
                        mark[to] = Mark::OnStack;
                        order.push(to);
                        stack.push((to, 0));
                    }
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    (dag, order, back)
}

/// Each node's longest path from an entry point of `dag`.
fn longest_path_layers(dag: &[Vec<usize>], order: &[usize]) -> Vec<usize> {
    let n = dag.len();
    let mut indegree = vec![0usize; n];
    for targets in dag {
        for &to in targets {
            indegree[to] += 1;
        }
    }
    let mut ready: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&at| indegree[at] == 0)
        .collect();
    ready.reverse();
    let mut layer = vec![0usize; n];
    while let Some(node) = ready.pop() {
        for &to in &dag[node] {
            layer[to] = layer[to].max(layer[node] + 1);
            indegree[to] -= 1;
            if indegree[to] == 0 {
                ready.push(to);
            }
        }
    }
    layer
}

/// The nodes of each layer, top to bottom.
fn order_columns(dag: &[Vec<usize>], layers: &[usize], order: &[usize]) -> Vec<Vec<usize>> {
    let depth = layers.iter().max().map_or(0, |m| m + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for &node in order {
        columns[layers[node]].push(node);
    }
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); dag.len()];
    for (from, targets) in dag.iter().enumerate() {
        for &to in targets {
            predecessors[to].push(from);
        }
    }
    let mut row = vec![0.0f64; dag.len()];
    let renumber = |columns: &Vec<Vec<usize>>, row: &mut Vec<f64>| {
        for column in columns {
            for (at, &node) in column.iter().enumerate() {
                // Node counts are tiny: exact as f64.
                #[allow(clippy::cast_precision_loss)]
                let at = at as f64;
                row[node] = at;
            }
        }
    };
    renumber(&columns, &mut row);
    for _ in 0..SWEEPS {
        for layer in 1..depth {
            sort_by_barycenter(&mut columns[layer], &predecessors, &row);
            renumber(&columns, &mut row);
        }
        for layer in (0..depth.saturating_sub(1)).rev() {
            sort_by_barycenter(&mut columns[layer], dag, &row);
            renumber(&columns, &mut row);
        }
    }
    columns
}

/// Orders `column` by the mean row of each node's `neighbours`; a node without any keeps
/// its row.
fn sort_by_barycenter(column: &mut [usize], neighbours: &[Vec<usize>], row: &[f64]) {
    let key = |node: usize| {
        let around = &neighbours[node];
        if around.is_empty() {
            return row[node];
        }
        #[allow(clippy::cast_precision_loss)]
        let count = around.len() as f64;
        around.iter().map(|&n| row[n]).sum::<f64>() / count
    };
    column.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(row[a].total_cmp(&row[b])));
}

#[cfg(test)]
mod tests {
    use meshray_core::trace::{MapEdge, Node, Stats};

    use super::*;

    fn map(nodes: &[&str], edges: &[(&str, &str)]) -> ServiceMap {
        ServiceMap {
            nodes: nodes
                .iter()
                .map(|name| Node {
                    name: (*name).to_owned(),
                    kind: if name.contains("gateway") {
                        NodeKind::Gateway
                    } else {
                        NodeKind::Service
                    },
                    stats: Stats::default(),
                })
                .collect(),
            edges: edges
                .iter()
                .map(|(from, to)| MapEdge {
                    from: (*from).to_owned(),
                    to: (*to).to_owned(),
                    stats: Stats::default(),
                })
                .collect(),
        }
    }

    fn layer_of(layout: &Layout, map: &ServiceMap, name: &str) -> usize {
        layout.layers[map.nodes.iter().position(|n| n.name == name).unwrap()]
    }

    #[test]
    fn a_call_chain_goes_left_to_right() {
        let m = map(
            &["productpage", "ratings", "reviews", "istio-ingressgateway"],
            &[
                ("istio-ingressgateway", "productpage"),
                ("productpage", "reviews"),
                ("reviews", "ratings"),
            ],
        );
        let layout = Layout::of(&m);
        assert_eq!(layer_of(&layout, &m, "istio-ingressgateway"), 0);
        assert_eq!(layer_of(&layout, &m, "productpage"), 1);
        assert_eq!(layer_of(&layout, &m, "reviews"), 2);
        assert_eq!(layer_of(&layout, &m, "ratings"), 3);
        assert!(layout.back_edges.is_empty());
        let xs: Vec<f64> = layout.positions.iter().map(|p| p.0).collect();
        assert!(xs[3] < xs[0] && xs[0] < xs[2] && xs[2] < xs[1], "{xs:?}");
    }

    #[test]
    fn a_callee_sits_right_of_its_deepest_caller() {
        // a → b → c and a → c: c is in layer 2, not 1.
        let m = map(&["a", "b", "c"], &[("a", "b"), ("b", "c"), ("a", "c")]);
        let layout = Layout::of(&m);
        assert_eq!(layer_of(&layout, &m, "c"), 2);
    }

    #[test]
    fn cycles_are_broken_and_every_node_is_placed() {
        let m = map(
            &["a", "b", "c", "lonely"],
            &[("a", "b"), ("b", "c"), ("c", "a"), ("a", "a")],
        );
        let layout = Layout::of(&m);
        assert_eq!(layout.back_edges.len(), 1);
        assert_eq!(layout.positions.len(), 4);
        assert!(no_overlaps(&layout));
    }

    pub(crate) fn no_overlaps(layout: &Layout) -> bool {
        let p = &layout.positions;
        (0..p.len()).all(|i| {
            (i + 1..p.len())
                .all(|j| (p[i].0 - p[j].0).abs() >= NODE_W || (p[i].1 - p[j].1).abs() >= NODE_H)
        })
    }

    #[test]
    fn thirty_services_fit_without_overlap() {
        let names: Vec<String> = (0..30).map(|i| format!("svc-{i:02}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut edges = Vec::new();
        for i in 0..30usize {
            for j in [i * 2 + 1, i * 2 + 2, i + 7] {
                if j < 30 {
                    edges.push((refs[i], refs[j]));
                }
            }
        }
        let m = map(&refs, &edges);
        let layout = Layout::of(&m);
        assert!(no_overlaps(&layout));
        for (from, to) in &edges {
            assert!(layer_of(&layout, &m, from) < layer_of(&layout, &m, to));
        }
        assert!(layout.width > 0.0 && layout.height > 0.0);
    }
}
