//! `charter` binary tests: the real executable started as a child process.

mod tls;
