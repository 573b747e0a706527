//! The relay's bind decoders (`relay::server::admission`).

pub(crate) mod server;
