//! Keys that mean the same on every inspector screen (`wsp connect`'s and `wsp proxy`'s):
//! quitting, following, the filter, moving the focus, and moving in a list.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key every screen reads the same way, whatever has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    /// Ctrl-C, Ctrl-Q.
    Quit,
    /// Ctrl-T: follow the newest frame, or pause.
    Follow,
    /// Ctrl-F: edit the filter.
    Filter,
    /// Tab: the next pane.
    NextFocus,
    /// Esc: back to the composer.
    Back,
}

/// What `k` means on every screen, if anything.
pub fn global(k: &KeyEvent) -> Option<Global> {
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    Some(match (ctrl, k.code) {
        (true, KeyCode::Char('c' | 'q')) => Global::Quit,
        (true, KeyCode::Char('t')) => Global::Follow,
        (true, KeyCode::Char('f')) => Global::Filter,
        (_, KeyCode::Tab) => Global::NextFocus,
        (_, KeyCode::Esc) => Global::Back,
        _ => return None,
    })
}

/// Where a list key takes the selection at `pos` in a list of `len` rows (`len` > 0): ↑↓ j k
/// one row, PgUp PgDn twenty, Home g the first, End G the last. `None` for another key.
pub fn moved(code: KeyCode, pos: usize, len: usize) -> Option<usize> {
    let last = len.saturating_sub(1);
    Some(match code {
        KeyCode::Up | KeyCode::Char('k') => pos.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => (pos + 1).min(last),
        KeyCode::PageUp => pos.saturating_sub(20),
        KeyCode::PageDown => (pos + 20).min(last),
        KeyCode::Home | KeyCode::Char('g') => 0,
        KeyCode::End | KeyCode::Char('G') => last,
        _ => return None,
    })
}
