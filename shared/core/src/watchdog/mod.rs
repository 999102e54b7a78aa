//! Watchdogs: pure trackers that notice when something an operator set up stopped working,
//! fed by the adapters (`serve`'s ingest, the reconcile Lambda's URL log) with a clock they
//! pass in.

pub mod dispositions;
