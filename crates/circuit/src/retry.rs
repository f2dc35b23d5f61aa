//! Retry with backoff. SKELETON: to be written (helper "retry").
