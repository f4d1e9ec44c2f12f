//! Where in the file a key is, so that every error names its line.

/// One step of a path into the file: a key, or an element of an array
/// (the n-th `[[source]]`).
#[derive(Debug, Clone, Copy)]
pub(super) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The file as toml parsed it, with the span of every key and value, so an
/// error names the line of the key that is wrong, not of the first key of
/// that name in the file.
pub(super) struct KeyLines<'a> {
    text: &'a str,
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> KeyLines<'a> {
    pub(super) fn parse(text: &'a str) -> Self {
        Self {
            text,
            root: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// 1-based line of the deepest step of `path` found in the file: the
    /// key itself when it is there, else the table that should hold it.
    pub(super) fn line(&self, path: &[Step]) -> Option<usize> {
        use toml::de::DeValue;
        let mut table = self.root.as_ref()?.get_ref();
        let mut value: Option<&toml::Spanned<DeValue>> = None;
        let mut found = None;
        for step in path {
            if let Some(v) = value.take() {
                match (v.get_ref(), step) {
                    (DeValue::Table(t), Step::Key(_)) => table = t,
                    (DeValue::Array(a), Step::Index(i)) => {
                        let Some(e) = a.get(*i) else { break };
                        found = Some(e.span().start);
                        value = Some(e);
                        continue;
                    }
                    _ => break,
                }
            }
            let Step::Key(k) = step else { break };
            let Some((key, v)) = table.iter().find(|(key, _)| key.get_ref().as_ref() == *k) else {
                break;
            };
            found = Some(key.span().start);
            value = Some(v);
        }
        let at = found?.min(self.text.len());
        Some(self.text[..at].matches('\n').count() + 1)
    }
}

/// 1-based number of the first line at or after byte `from` that sets `key`.
pub(super) fn find_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let skip = text[..from].matches('\n').count();
    text.lines()
        .enumerate()
        .skip(skip)
        .find(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}
