//! In-memory storage for tests and demos.
