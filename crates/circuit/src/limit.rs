//! Adaptive concurrency limits. SKELETON: to be written (helper "limit").
