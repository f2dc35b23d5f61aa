//! Adaptive-limit models. To be written.
