//! End-to-end tests for Tocsin: each test starts the real binaries and real
//! peers on 127.0.0.1 and cleans up the processes it starts.
