//! Pages: one per route.

pub(crate) mod home;
pub(crate) mod lobby;
pub(crate) mod meeting;
