//! Circuit breaker beside recloser and failsafe. To be written.
fn main() {}
