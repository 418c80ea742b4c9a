//! Config parsing tests (rewritten below).
