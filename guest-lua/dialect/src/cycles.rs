//! Aliases defined through themselves with no structure in between
//! (check warning T008): `type T = T`, `type C = C | number`, or
//! `type A = B | string` with `type B = A?`. Checking a value against
//! such a type follows the alias into itself until the recursion limit
//! (typed-lua.md §3.5), at every check that reaches the cycle, so
//! `type T = T` matches nothing and the others pay 64 levels a miss.
//!
//! A reference is *unguarded* when it is reached from a declaration's
//! body through `?`, `|`, `&` and validators only: a table, array, map,
//! function, interface or generic instance in between is structure, and a
//! recursive type through one (`type L = {next: L?}`) is the normal kind.
//!
//! Guarantees: linear in the declarations' IR (each node once, no
//! recursion over its depth) and in the references found; a cycle is
//! found by Tarjan's algorithm, iteratively.

use crate::ty::{Ty, TyRef};

/// Most names a T008 message lists of one cycle.
pub(crate) const MAX_NAMED: usize = 5;

/// The cycles of unguarded references among the declarations, each as
/// its declarations in ascending order (`decls[i]`: declaration `i`'s IR,
/// `None` when unresolved).
pub(crate) fn on_cycles(decls: &[Option<TyRef>]) -> Vec<Vec<usize>> {
    // `seen[d] == i + 1`: declaration `i` already has an edge to `d`.
    let mut seen = vec![0usize; decls.len()];
    let edges: Vec<Vec<usize>> = (decls.iter().enumerate())
        .map(|(i, t)| {
            t.as_ref()
                .map(|t| unguarded(t, i + 1, &mut seen))
                .unwrap_or_default()
        })
        .collect();
    components(&edges)
        .into_iter()
        .filter(|c| c.len() > 1 || edges[c[0]].contains(&c[0]))
        .collect()
}

/// The declarations referred to unguarded from `t`, each once (`seen`
/// marks those found with `mark`; each one below `seen.len()`).
fn unguarded(t: &TyRef, mark: usize, seen: &mut [usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut todo: Vec<&Ty> = vec![t];
    while let Some(t) = todo.pop() {
        match t {
            Ty::Optional(t) => todo.push(t),
            Ty::Annotated { inner, .. } => todo.push(inner),
            Ty::Union(ts) | Ty::Inter(ts) => todo.extend(ts.iter().map(|t| &**t)),
            Ty::Named { decl, .. } => {
                let d = decl.0 as usize;
                if let Some(m) = seen.get_mut(d)
                    && *m != mark
                {
                    *m = mark;
                    out.push(d);
                }
            }
            _ => {}
        }
    }
    out
}

/// The strongly connected components of the graph `edges`, each in
/// ascending order (Tarjan's algorithm, with an explicit stack).
fn components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let n = edges.len();
    let (mut index, mut low) = (vec![NONE; n], vec![0; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        let mut calls = vec![(root, 0usize)];
        (index[root], low[root], next) = (next, next, next + 1);
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, i)) = calls.last() {
            if let Some(&w) = edges[v].get(i) {
                calls.last_mut().expect("just read").1 += 1;
                if index[w] == NONE {
                    (index[w], low[w], next) = (next, next, next + 1);
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut c = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    c.push(w);
                    if w == v {
                        break;
                    }
                }
                c.sort_unstable();
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_find_cycles_and_self_loops_only() {
        // 0 -> 1 -> 2 -> 0 (a cycle), 3 -> 3 (a self loop), 4 -> 0 (no cycle).
        let edges = vec![vec![1], vec![2], vec![0], vec![3], vec![0]];
        let mut cs = components(&edges);
        cs.sort();
        assert_eq!(cs, vec![vec![0, 1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn a_long_chain_needs_no_deep_recursion() {
        // 200,000 declarations in one cycle: an explicit stack.
        let n = 200_000;
        let edges: Vec<Vec<usize>> = (0..n).map(|i| vec![(i + 1) % n]).collect();
        let cs = components(&edges);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].len(), n);
    }
}
