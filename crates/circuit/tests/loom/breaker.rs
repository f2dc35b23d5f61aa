//! Breaker models. To be written.
