mod telemetry;
mod telemetry_report;
