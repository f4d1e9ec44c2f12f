//! The pages' feed: the one subscriber of the bus that every page reads
//! through. Each message is put in SSE form here once and shared by every
//! page, and frames are thinned here once per stream to `frames-per-second`,
//! so twenty pages cost one serialisation and one thinning, and each page is
//! woken only for what it is sent.
//!
//! A page that shows one stream in full (`?focus=NAME`) is sent the other
//! streams' frames as tiles: without thresholds and spectrum, about a
//! quarter of the bytes. Tiles are made only while such a page is open.

use super::{Kind, Outgoing};
use crate::protocol::Message;
use crate::sinks::Bus;
use crate::sinks::Shutdown;
use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Items the feed's rings hold for their slowest page.
const RING: usize = 4096;

/// One message, ready to write to a page.
#[derive(Debug)]
pub struct Item {
    pub id: u64,
    pub kind: Kind,
    pub stream: Option<String>,
    /// `id: N\ndata: LINE\n\n`.
    pub full: Bytes,
    /// Frames only, while a focused page is open: the frame as a tile.
    pub tile: Option<Bytes>,
}

impl Item {
    /// What a page focused on `focus` (None: on every stream) is sent.
    pub fn bytes_for(&self, focus: Option<&str>) -> &Bytes {
        match (&self.tile, focus) {
            (Some(t), Some(f)) if self.stream.as_deref() != Some(f) => t,
            _ => &self.full,
        }
    }
}

pub struct Feed {
    /// Frames at most `frames-per-second` per stream; everything else.
    pub thinned: broadcast::Sender<Arc<Item>>,
    /// Every message, for pages that ask for more frames than that.
    pub all: broadcast::Sender<Arc<Item>>,
    /// Open pages with a focus: tiles are made while there are any.
    pub focused: AtomicUsize,
    every: Duration,
}

impl Feed {
    pub fn new(frames_per_second: f64) -> Arc<Self> {
        let every = if frames_per_second > 0.0 && frames_per_second.is_finite() {
            Duration::from_secs_f64(1.0 / frames_per_second)
        } else {
            Duration::ZERO
        };
        Arc::new(Self {
            thinned: broadcast::channel(RING).0,
            all: broadcast::channel(RING).0,
            focused: AtomicUsize::new(0),
            every,
        })
    }

    /// The least time between two frames of one stream on `thinned`.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Renders `m` for pages (with a tile while any page has a focus).
    pub fn render(&self, m: &Outgoing) -> Arc<Item> {
        let tile = (m.kind == Kind::Frame && self.focused.load(Relaxed) > 0)
            .then(|| tile_line(&m.line))
            .flatten()
            .map(|l| sse(m.id, &l));
        Arc::new(Item {
            id: m.id,
            kind: m.kind,
            stream: m.stream.clone(),
            full: sse(m.id, &m.line),
            tile,
        })
    }

    /// Forwards the bus to the pages until the bus closes or `shutdown`.
    pub async fn run(self: Arc<Self>, bus: Arc<Bus>, mut shutdown: Shutdown) {
        let mut rx = bus.tx.subscribe();
        let mut last_id = 0;
        let mut last_frame: HashMap<String, Instant> = HashMap::new();
        loop {
            let m = tokio::select! {
                _ = shutdown.raised() => return,
                m = rx.recv() => m,
            };
            // Frames lost to a lag are thinned anyway; events never are.
            let Some(batch) = bus.catch_up(m, &mut last_id) else {
                return;
            };
            for m in batch {
                self.forward(&m, &mut last_frame);
            }
        }
    }

    fn forward(&self, m: &Outgoing, last_frame: &mut HashMap<String, Instant>) {
        let to_all = self.all.receiver_count() > 0;
        let to_thinned = self.thinned.receiver_count() > 0
            && !thinned(m.kind, m.stream.as_deref(), self.every, last_frame);
        if !to_all && !to_thinned {
            return;
        }
        let item = self.render(m);
        if to_thinned {
            let _ = self.thinned.send(item.clone());
        }
        if to_all {
            let _ = self.all.send(item);
        }
    }
}

/// Whether a frame comes sooner than `every` after the last one passed
/// for its stream (and if not, it becomes that last one).
pub fn thinned(
    kind: Kind,
    stream: Option<&str>,
    every: Duration,
    last: &mut HashMap<String, Instant>,
) -> bool {
    if kind != Kind::Frame || every.is_zero() {
        return false;
    }
    let Some(stream) = stream else {
        return false;
    };
    let now = Instant::now();
    match last.get_mut(stream) {
        Some(t) if now.duration_since(*t) < every => true,
        Some(t) => {
            *t = now;
            false
        }
        None => {
            last.insert(stream.to_string(), now);
            false
        }
    }
}

/// A message in SSE form, with `id` (0: none).
pub fn sse(id: u64, line: &str) -> Bytes {
    let line = line.trim_end();
    let mut b = String::with_capacity(line.len() + 32);
    if id > 0 {
        b.push_str("id: ");
        b.push_str(&id.to_string());
        b.push('\n');
    }
    // Serialised JSON holds no raw newline, so one data line suffices.
    b.push_str("data: ");
    b.push_str(line);
    b.push_str("\n\n");
    Bytes::from(b)
}

/// The frame without the parts only the focused stream's charts draw.
fn tile_line(line: &str) -> Option<String> {
    let Ok(Message::Frame(mut f)) = serde_json::from_str::<Message>(line) else {
        return None;
    };
    f.thresholds = None;
    f.spectrum_db = None;
    Some(crate::sinks::to_line(&Message::Frame(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: &str) -> Outgoing {
        let line = format!(
            "{{\"type\":\"frame\",\"seq\":1,\"stream\":\"{stream}\",\"sample_index\":0,\"time\":1.0,\
             \"label\":\"Normal\",\"confidence\":0.9,\"probs\":[0.9,0.1],\"thresholds\":[[0.5,0.25]],\
             \"rms\":0.1,\"peak\":0.2,\"flags\":[],\"latency_ms\":1.0,\"model\":\"abc\",\
             \"spectrum_db\":[-10.0,-20.0]}}\n"
        );
        Outgoing {
            id: 7,
            kind: Kind::Frame,
            stream: Some(stream.into()),
            line,
            lite: None,
        }
    }

    #[test]
    fn a_focused_page_gets_tiles_of_the_other_streams_only() {
        let feed = Feed::new(10.0);
        feed.focused.fetch_add(1, Relaxed);
        let item = feed.render(&frame("pump"));
        let full = std::str::from_utf8(item.bytes_for(Some("pump"))).expect("utf8");
        let tile = std::str::from_utf8(item.bytes_for(Some("fan"))).expect("utf8");
        assert!(full.starts_with("id: 7\ndata: {") && full.ends_with("}\n\n"));
        assert!(full.contains("thresholds") && full.contains("spectrum_db"));
        assert!(tile.starts_with("id: 7\ndata: {") && tile.contains("\"probs\":[0.9,0.1]"));
        assert!(
            !tile.contains("thresholds") && !tile.contains("spectrum_db"),
            "{tile}"
        );
        assert_eq!(item.bytes_for(None), &item.full);
    }

    #[test]
    fn frames_are_thinned_per_stream_and_events_never() {
        let mut last = HashMap::new();
        let every = Duration::from_secs(60);
        assert!(!thinned(Kind::Frame, Some("pump"), every, &mut last));
        assert!(thinned(Kind::Frame, Some("pump"), every, &mut last));
        assert!(!thinned(Kind::Frame, Some("fan"), every, &mut last));
        assert!(!thinned(Kind::Event, Some("pump"), every, &mut last));
    }
}
