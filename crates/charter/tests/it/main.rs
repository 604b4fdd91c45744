//! Integration tests of the `charter` binary: real processes, real files, real HTTP.

mod audit;
mod cards;
mod cli;
mod help;
mod openai;
mod tls;
mod train;
