//! The HTTP server and in-process workers of `vicibridge serve`.
