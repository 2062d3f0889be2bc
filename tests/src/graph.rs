//! Circles in a directed graph (a node's edges: what it uses or depends on), for the checks
//! that refuse them: modules of `shared/` importing each other (`tests/tests/tidy.rs`) and
//! resources of template.yaml depending on each other (`tests/tests/template.rs`).

use std::collections::{BTreeMap, BTreeSet};

/// A circle in `edges`, as the path that closes it (its first node again at the end), if
/// there is one. Depth-first from each node in order; nodes proven circle-free are skipped.
pub fn find_circle<N, C>(edges: &BTreeMap<N, C>) -> Option<Vec<N>>
where
    N: Ord + Clone,
    for<'a> &'a C: IntoIterator<Item = &'a N>,
{
    fn visit<N, C>(
        node: &N,
        edges: &BTreeMap<N, C>,
        path: &mut Vec<N>,
        done: &mut BTreeSet<N>,
    ) -> Option<Vec<N>>
    where
        N: Ord + Clone,
        for<'a> &'a C: IntoIterator<Item = &'a N>,
    {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.clone());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circle_is_found_with_its_path_and_a_tree_has_none() {
        let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        edges.insert("a", vec!["b", "c"]);
        edges.insert("b", vec!["c"]);
        edges.insert("c", vec![]);
        assert_eq!(find_circle(&edges), None);
        edges.insert("c", vec!["a"]);
        assert_eq!(find_circle(&edges), Some(vec!["a", "b", "c", "a"]));
    }
}
