//! HTTP endpoints for health, readiness and metrics.
