// The desktop in the browser: noVNC's RFB client on our WebSocket bridge (same origin, relative URLs so
// it works under /datalabs/<id>/ behind any front proxy).
import RFB from "./novnc/core/rfb.js";

const screen = document.getElementById("screen");
const status = document.getElementById("status");
const url = new URL("vnc", location.href);
url.protocol = location.protocol === "https:" ? "wss:" : "ws:";

let rfb = null;
let retry = 500;
let fromLab = "";  // the lab's clipboard as last seen, so we do not paste it back

function say(text) {
  status.textContent = text;
  status.hidden = !text;
}

function connect() {
  rfb = new RFB(screen, url.href, { shared: true, wsProtocols: ["binary"] });
  rfb.resizeSession = true;   // resize=remote: the desktop takes the browser window's size
  rfb.scaleViewport = false;
  rfb.focusOnClick = true;
  rfb.addEventListener("connect", () => {
    document.body.dataset.state = "connected";
    say("");
    retry = 500;
    rfb.focus();
  });
  rfb.addEventListener("disconnect", () => {
    // Reconnect (after a reload the page does this at once; after a network blip with back-off).
    document.body.dataset.state = "disconnected";
    say("Disconnected from the desktop; reconnecting…");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  });
  rfb.addEventListener("desktopname", (e) => { document.title = e.detail.name; });
  rfb.addEventListener("clipboard", (e) => {
    // Copy in the app -> the panel, and the user's clipboard (the browser allows it on secure origins).
    fromLab = e.detail.text;
    panelText.value = fromLab;
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(fromLab).catch(() => {});
    }
  });
  window.rfb = rfb;  // for tests and the curious
}

// The user's clipboard -> the app: when the tab gets focus (after copying elsewhere) and on paste.
async function pushClipboard() {
  if (!rfb || !navigator.clipboard || !navigator.clipboard.readText) return;
  try {
    const text = await navigator.clipboard.readText();
    if (text && text !== fromLab) rfb.clipboardPasteFrom(text);
  } catch (e) { /* permission refused: the user can still type */ }
}
window.addEventListener("focus", pushClipboard);
document.addEventListener("paste", (e) => {
  if (e.target && e.target.id === "clipboard-text") return;  // the panel sends its whole text itself
  const text = e.clipboardData && e.clipboardData.getData("text/plain");
  if (text && rfb) rfb.clipboardPasteFrom(text);
});

// The clipboard panel, for browsers or origins without the clipboard API: its text is the lab's clipboard.
const toggle = document.getElementById("clipboard-toggle");
const panel = document.getElementById("clipboard");
const panelText = document.getElementById("clipboard-text");
toggle.addEventListener("click", () => {
  panel.hidden = !panel.hidden;
  toggle.setAttribute("aria-expanded", String(!panel.hidden));
  if (panel.hidden) { if (rfb) rfb.focus(); } else panelText.focus();
});
panelText.addEventListener("input", () => {
  if (rfb) rfb.clipboardPasteFrom(panelText.value);
});

connect();
