//! Helpers shared by the test binaries that include them.

pub(crate) mod counting;
