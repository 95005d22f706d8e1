// Typing indicators (docs/protocol.md, "Typing"), both ways: what this user says while typing,
// and who else is typing now. Timers only; the page renders `TypingShown.names()`.

/** The edge ends a signal after 6 s of silence: a refresh every 3 s keeps it alive. */
export const REFRESH_MS = 3000;

/** A safety net for a lost `typing:false`: a signal not refreshed for this long is dropped. */
export const STALE_MS = 7000;

/**
 * The user's own signal for one room: `{"typing":true}` at most once per REFRESH_MS while they
 * type (the edge passes at most 2 a second anyway), `{"typing":false}` once when they stop.
 */
export class TypingSignal {
  constructor(publish) {
    this.publish = publish;
    this.lastSent = 0;
    this.active = false;
  }

  /** The composer changed: typing while it has text, stopped when it was cleared. */
  input(hasText) {
    if (!hasText) {
      this.stop();
      return;
    }
    const now = Date.now();
    if (this.active && now - this.lastSent < REFRESH_MS) return;
    this.active = true;
    this.lastSent = now;
    this.publish(true);
  }

  /** Sent, cleared, left the field or the room: one `typing:false`, only if true was said. */
  stop() {
    if (!this.active) return;
    this.active = false;
    this.lastSent = 0;
    this.publish(false);
  }
}

/** Who else is typing in the open room, each until `typing:false` or STALE_MS of silence. */
export class TypingShown {
  constructor(onChange) {
    this.onChange = onChange;
    /** userId → the timer that drops them. */
    this.timers = new Map();
  }

  /** A TYPING event: (re)starts or ends that user's indicator. */
  set(userId, typing) {
    clearTimeout(this.timers.get(userId));
    if (typing) {
      this.timers.set(userId, setTimeout(() => this.set(userId, false), STALE_MS));
    } else if (!this.timers.delete(userId)) {
      return;
    }
    this.onChange();
  }

  /** The typists, sorted, for the indicator. */
  names() {
    return [...this.timers.keys()].sort();
  }

  /** The room closed: no timer outlives it. */
  clear() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
