//! The one integration-test binary: every module drives the real `trifecta` / `trifecta-verify`
//! binaries (assert_cmd) or the library on temporary segments.

mod cache_concurrency;
mod cache_corruption;
mod cache_crash;
mod cache_locks;
mod cache_maintenance;
mod cache_p1;
mod cache_support;
mod cli_contract;
mod cli_ux;
mod corpus;
mod daemon;
mod daemon_db_locks;
mod daemon_hostile;
mod dashboard_browser;
mod encodings;
mod extract_cli;
mod gate_mutants;
mod gates_fail;
mod golden;
mod hostile;
mod index;
mod layers;
mod remote_cache;
mod support;
mod telemetry;
mod telemetry_report;
mod untrusted;
mod uri_props;
mod verify;
mod verify_shard;
