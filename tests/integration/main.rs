//! The one integration-test binary: every module drives the real `trifecta` / `trifecta-verify`
//! binaries (assert_cmd) on temporary segments.

mod cli_contract;
mod index;
mod support;
mod uri_props;
