//! What a notification says, in the body each receiver expects: drsnd's
//! JSON, Slack's and Teams' `{"text": ...}`, or ntfy's plain text with its
//! Title, Priority and Tags headers.

use crate::config::{AlarmKind, Format};
use crate::history::time::rfc3339;
use crate::protocol::{EventMsg, EventState};
use serde_json::json;

/// One notification: the event, its kind, and how many like it (same
/// stream and kind) were held back since the last one sent.
#[derive(Debug, Clone)]
pub struct Notification {
    pub kind: AlarmKind,
    pub node: String,
    pub event: EventMsg,
    pub suppressed: u64,
}

/// A request body and the headers that go with it.
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

fn state_text(s: &EventState) -> String {
    let v = serde_json::to_value(s).unwrap_or_default();
    let state = v["state"].as_str().unwrap_or("?").to_string();
    match (v.get("class").and_then(|c| c.as_str()), v.get("zone")) {
        (Some(class), _) => format!("{state} ({class})"),
        (None, Some(z)) if !z.is_null() => format!("ISO zone {}", z.as_str().unwrap_or("?")),
        _ => state,
    }
}

impl Notification {
    pub fn title(&self) -> String {
        format!(
            "{}/{}: {}",
            self.node,
            self.event.stream,
            state_text(&self.event.to)
        )
    }

    /// One line a person reads on a phone.
    pub fn text(&self) -> String {
        let e = &self.event;
        let mut t = format!(
            "{} on {}: {} (was {})",
            e.stream,
            self.node,
            state_text(&e.to),
            state_text(&e.from)
        );
        if let Some(src) = e.evidence.family_source {
            t.push_str(&format!(", named by {}", src.as_str()));
        }
        if let Some(a) = e.evidence.mean_anomaly {
            t.push_str(&format!(", anomaly {a:.2}"));
        }
        t.push_str(&format!(", at {}", rfc3339(e.time)));
        if self.suppressed > 0 {
            t.push_str(&format!(
                ". {} more {} notifications held back since the last",
                self.suppressed,
                self.kind.as_str()
            ));
        }
        t
    }

    pub fn body(&self, format: Format) -> Body {
        let json_body = |v: serde_json::Value| Body {
            content_type: "application/json",
            bytes: v.to_string().into_bytes(),
            headers: Vec::new(),
        };
        match format {
            Format::Json => json_body(json!({
                "v": 1,
                "kind": self.kind.as_str(),
                "node": self.node,
                "stream": self.event.stream,
                "title": self.title(),
                "text": self.text(),
                "suppressed": self.suppressed,
                "event": self.event,
            })),
            Format::Slack | Format::Teams => json_body(json!({ "text": self.text() })),
            Format::Ntfy => Body {
                content_type: "text/plain; charset=utf-8",
                bytes: self.text().into_bytes(),
                headers: vec![
                    ("Title", self.title()),
                    ("Priority", self.priority().into()),
                    ("Tags", format!("drsnd,{}", self.kind.as_str())),
                ],
            },
        }
    }

    fn priority(&self) -> &'static str {
        match self.kind {
            AlarmKind::Fault | AlarmKind::ZoneD | AlarmKind::NoSignal => "high",
            AlarmKind::Recovered => "low",
            _ => "default",
        }
    }
}
