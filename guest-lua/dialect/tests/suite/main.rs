//! The dialect front-end's tests, in one binary so helpers are shared:
//! - `snippets`: the contract's snippets (typed-lua.md §5);
//! - `corpus`: typed and plain-Lua corpora;
//! - `errors`: known-bad inputs and the limits;
//! - `props`: property tests on arbitrary input;
//! - `types`: type IR, resolution, run-time type references, T codes;
//! - `checks`: phase C's value checks (T010–T016), spans, the human form.

mod checks;
mod common;
mod corpus;
mod errors;
mod props;
mod snippets;
mod types;
