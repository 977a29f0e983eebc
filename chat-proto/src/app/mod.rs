//! The chat: tokens, rules, the bus between nodes, and the chat as a server `App`.

pub mod auth;
pub mod bus;
#[cfg(feature = "server")]
pub mod chat;
#[cfg(feature = "redis")]
pub mod redis_bus;
pub mod rules;
