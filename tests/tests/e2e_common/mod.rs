//! What the containerd end-to-end tests share: the fixture in `runsc_rs_tests::containerd`
//! (one copy for the tests and the benchmark), re-exported for `mod e2e_common;`.

#![allow(unused_imports)] // Each test binary uses its own part.

pub use runsc_rs_tests::containerd::*;
pub use runsc_rs_tests::skip;
