//! The single integration-test binary; each area adds one module.

mod corpus;
mod extract_cli;
