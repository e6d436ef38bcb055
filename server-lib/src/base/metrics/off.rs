//! [`Metrics`] without the `metrics` feature: a type with no value, so a hub never has one
//! (`Hub::metrics()` is always `None`) and every counting call site compiles to nothing.

use std::convert::Infallible;
use std::time::Duration;

use super::{FrameKind, Gauges, Source};

/// Metrics are compiled out (feature `metrics` off): no value of this type exists.
#[derive(Debug)]
pub struct Metrics(Infallible);

#[allow(missing_docs)]
impl Metrics {
    /// Without the feature, no node has metrics.
    pub(crate) fn for_node(_: &str) -> Option<Self> {
        None
    }
    pub(crate) fn received(&self, _: FrameKind, _: usize) {
        match self.0 {}
    }
    pub(crate) fn sent(&self, _: FrameKind, _: u64, _: u64) {
        match self.0 {}
    }
    pub(crate) fn delivered(&self, _: usize, _: usize) {
        match self.0 {}
    }
    pub(crate) fn handshake(&self, _: u16) {
        match self.0 {}
    }
    pub(crate) fn closed(&self, _: u16, _: bool) {
        match self.0 {}
    }
    pub(crate) fn command(&self, _: &'static str, _: Source, _: Duration) {
        match self.0 {}
    }
    pub(crate) fn api_call(&self, _: &'static str, _: i32, _: Duration) {
        match self.0 {}
    }
    pub fn cluster_published(&self) {
        match self.0 {}
    }
    pub fn cluster_received(&self) {
        match self.0 {}
    }
    pub fn redis_error(&self) {
        match self.0 {}
    }
    pub fn render(&self, _: &Gauges) -> String {
        match self.0 {}
    }
}
