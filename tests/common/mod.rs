//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod app;
pub mod db;
pub mod proxy;
pub mod spec;
