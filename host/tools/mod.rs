//! The tools built on the library: `stagefit bench`, `tune`, `selftest` and `overhead`. They use
//! the core and the MoE layer; nothing in the library uses them.

pub mod baseline;
pub mod bench;
pub mod overhead;
pub(crate) mod problem;
pub mod selftest;
pub mod tune;
