//! Harness for end-to-end tests on a real cluster.
