//! Waiting for the keyboard focus after the click, on evidence rather than
//! for a fixed time. The X server sends `FocusIn` to a window, and to each
//! of its ancestors, when the focus moves into it or into a window inside
//! it (a toolkit gives the focus to an inner window of its top-level). So
//! the watch listens on the agent's top-level window, and after each event
//! asks the server where keystrokes go now; the wait ends the moment they
//! go to the agent's window, or at the deadline (`gui.settle_ms`).
//!
//! Focus events on the root would miss most moves: a move from one
//! top-level window to another is reported to the windows between the two
//! and their common ancestor, the root, but not to the root itself. The
//! window manager's `_NET_ACTIVE_WINDOW` is not watched either: it is the
//! manager's statement, while the input focus decides where a key goes,
//! and a change of it always sends `FocusIn`.

use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Window};

use super::window::{Display, X11Error};

/// The focus events of one top-level window, selected for this process's X
/// connection until dropped.
pub(crate) struct FocusWatch<'a> {
    display: &'a Display,
    window: Window,
}

impl Display {
    /// Starts listening for focus changes in `top_level`. Made before the
    /// click, so that a change the click causes is never missed: the first
    /// look at the focus comes after the server has taken this request.
    ///
    /// # Errors
    /// [`X11Error`], for instance when the window has just closed.
    pub(crate) fn watch_focus(&self, top_level: Window) -> Result<FocusWatch<'_>, X11Error> {
        let events = ChangeWindowAttributesAux::new().event_mask(EventMask::FOCUS_CHANGE);
        self.conn
            .change_window_attributes(top_level, &events)
            .map_err(|e| X11Error(format!("change_window_attributes: {e}")))?
            .check()
            .map_err(|e| X11Error(format!("cannot watch the window's focus: {e}")))?;
        Ok(FocusWatch {
            display: self,
            window: top_level,
        })
    }
}

impl FocusWatch<'_> {
    /// Waits until keystrokes go to the window (its top-level holds the
    /// focus, or a window inside it does), or until `deadline`. Returns
    /// whether they do. Checks at once, so a window that already has the
    /// focus costs one look.
    ///
    /// # Errors
    /// [`X11Error`] when the server cannot be read.
    pub(crate) fn wait(&self, deadline: Instant) -> Result<bool, X11Error> {
        loop {
            self.drain()?;
            if self.display.keyboard_window()? == Some(self.window) {
                return Ok(true);
            }
            // An event that came in with the answers just read waits in the
            // connection's queue, where polling the socket would not see it.
            if self.drain()? {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.readable_within(left)?;
        }
    }

    /// Takes every event already received; true if there was one. Only the
    /// wake matters: the focus itself is read from the server.
    fn drain(&self) -> Result<bool, X11Error> {
        let mut any = false;
        while self
            .display
            .conn
            .poll_for_event()
            .map_err(|e| X11Error(format!("the X connection failed: {e}")))?
            .is_some()
        {
            any = true;
        }
        Ok(any)
    }

    /// Sleeps until the server sends something or `left` passes.
    fn readable_within(&self, left: Duration) -> Result<(), X11Error> {
        // The connection's stream is its socket.
        let mut fds = [PollFd::new(self.display.conn.stream(), PollFlags::IN)];
        // Waking early is harmless: the caller looks again and comes back.
        let timeout = Timespec::try_from(left.min(Duration::from_secs(60)))
            .map_err(|e| X11Error(format!("a wait of {left:?}: {e}")))?;
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
            Err(e) => Err(X11Error(format!("waiting for the X server: {e}"))),
        }
    }
}

impl Drop for FocusWatch<'_> {
    fn drop(&mut self) {
        // Stop the events, so none piles up between deliveries. A window that
        // closed meanwhile answers with an error, which the next drain takes.
        let none = ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT);
        let _ = self
            .display
            .conn
            .change_window_attributes(self.window, &none);
        let _ = self.display.conn.flush();
    }
}
