//! Integration tests of the `charter` binary: real processes, real files, real HTTP.

mod audit;
mod cards;
mod cli;
mod hardening;
mod help;
mod limits;
mod openai;
mod privacy;
mod tls;
mod train;
