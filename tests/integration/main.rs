//! The single integration test binary; one module per area.

mod cache_concurrency;
mod cache_corruption;
mod cache_crash;
mod cache_locks;
mod cache_maintenance;
mod cache_p1;
mod cache_support;
