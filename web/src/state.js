// The one state object every module reads and changes: who is signed in, the connection, the
// room list and the open room. It has no logic of its own, so any module can import it without
// pulling in another's (the modules otherwise depend on each other one way only).

/** Everything the page shows; render functions read it, handlers change it. */
export const state = {
  me: null,
  api: null,
  live: null,
  connected: false,
  /** roomId → Room (docs/api.md), kept current by the user feed. */
  rooms: new Map(),
  /** The open room's view (view.js newView), or null. */
  view: null,
};
