//! The one integration-test binary: every module drives the real `trifecta` / `trifecta-verify`
//! binaries (assert_cmd) or the library on temporary segments.

mod cli_contract;
mod corpus;
mod extract_cli;
mod index;
mod support;
mod uri_props;
