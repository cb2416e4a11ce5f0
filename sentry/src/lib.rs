//! The runsc-rs sentry (being written).
