//! The user's clipboard around a paste: what it held is read only when
//! someone holds it, and put back after the submit (an empty one is
//! emptied again), unless the user copied something meanwhile.

use std::time::Duration;

use crate::model::DeliveryError;

use super::window::Display;

/// What the user's clipboard held before a paste, to put back after it.
pub(super) enum PutBack {
    /// This text.
    Text(String),
    /// Nothing: the clipboard was empty, and is emptied again.
    Empty,
}

/// After the submit key, how long the window gets to read the paste before
/// the clipboard is put back. The window asks for the paste when it handles
/// the paste key, before the submit key, but it handles keys on its own
/// time.
pub(super) const PASTE_READ_MARGIN: Duration = Duration::from_millis(50);

/// Puts the user's clipboard back, unless it holds something else than
/// the paste by now (the user copied it meanwhile: that stays). While
/// this process holds the clipboard, reading it costs one round trip.
pub(super) fn put_back(clipboard: &mut arboard::Clipboard, what: PutBack, pasted: &str) {
    if clipboard.get_text().ok().as_deref() != Some(pasted) {
        return;
    }
    let _ = match what {
        PutBack::Text(old) => clipboard.set_text(old),
        PutBack::Empty => clipboard.clear(),
    };
}

/// Fills the clipboard with `text` for a paste. Returns what to put
/// back afterwards: the user's text is read only when someone holds the
/// clipboard (an empty one has nothing to keep, and asking costs a
/// round trip per text format). `None` when the holder offers no text
/// (an image, say), which cannot be put back: the paste then stays.
pub(super) fn fill(
    clipboard: &mut arboard::Clipboard,
    display: &Display,
    text: &str,
) -> Result<Option<PutBack>, DeliveryError> {
    let held = display
        .clipboard_owner()
        .map_err(|e| DeliveryError::transient(format!("cannot read the clipboard: {e}")))?
        .is_some();
    let what = if held {
        clipboard.get_text().ok().map(PutBack::Text)
    } else {
        Some(PutBack::Empty)
    };
    clipboard
        .set_text(text)
        .map_err(|e| DeliveryError::transient(format!("cannot set the clipboard: {e}")))?;
    Ok(what)
}
