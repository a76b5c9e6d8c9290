//! Integration tests against the real RabbitMQ and PostgreSQL on this machine (and the embedded
//! SQLite + in-process bus). One test binary, so the server crate is linked once.

mod addresses;
mod bad_input;
mod broker_cluster;
mod broker_users;
mod burst;
mod bus_contract;
mod catalog_api;
mod dead_letters;
mod edge;
mod epochs;
mod fault_proxy;
mod faults;
mod gallery_api;
mod helpers;
mod likes;
mod live;
mod network_faults;
mod node_faults;
mod outbox;
mod pages;
mod pool;
mod probes;
mod process;
mod processes;
mod read_model;
mod returns;
mod schemas;
mod security;
mod sessions;
mod storm;
mod tls;
mod two_catalogs;
