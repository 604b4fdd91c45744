//! testkit tests: the throwaway PostgreSQL cluster really serves and really goes away.

mod postgres;
