//! The Sparkplug B payload (spec 3.0, `sparkplug_b.proto`, proto2), the
//! part drsnd writes and reads: a payload of metrics with scalar values.
//! Field numbers are the spec's; datasets, templates, properties and
//! metadata are left out (drsnd sends none, and an NCMD carrying them
//! still decodes: unknown fields are skipped).

#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// Milliseconds since the Unix epoch.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// 0..=255; none in NDEATH.
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15")]
    pub value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(uint32, tag = "10")]
    Int(u32),
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(float, tag = "12")]
    Float(f32),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
    #[prost(string, tag = "15")]
    String(String),
}

/// The spec's DataType numbers drsnd uses.
pub mod datatype {
    pub const INT64: u32 = 4;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const BOOLEAN: u32 = 11;
    pub const STRING: u32 = 12;
}

impl Metric {
    /// A metric with its type; `value` None is sent as `is_null`.
    pub fn new(name: &str, datatype: u32, value: Option<Value>, ms: u64) -> Self {
        Self {
            name: Some(name.to_string()),
            timestamp: Some(ms),
            datatype: Some(datatype),
            is_historical: None,
            is_null: value.is_none().then_some(true),
            value,
        }
    }
}
