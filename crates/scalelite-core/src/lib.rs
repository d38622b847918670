#![doc = include_str!("../README.md")]

pub mod aws_profile;
pub mod checksum;
pub mod cloudfront;
pub mod config;
pub mod error;
pub mod fsapi;
pub mod ids;
pub mod jwt;
pub mod load;
pub mod lrs;
pub mod markup;
pub mod params;
pub mod rehome;
pub mod retention;
pub mod scope;
pub mod selection;
pub mod sign;
pub mod upload;
pub mod voice_bridge;
pub mod xml;

pub use checksum::{Algorithm, AlgorithmSet};
pub use error::BbbError;
pub use ids::{MeetingId, Secret, ServerId, TenantId};
pub use params::Params;
