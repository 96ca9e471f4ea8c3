//! Pages: one per route.

pub(crate) mod home;
pub(crate) mod meeting;
